"""Scoring a YOLO model on one dataset split, and the promotion gate's verdict.

Candidate and champion are scored by the same function on the same split with the same
settings: a gate that compares numbers produced differently compares nothing.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# ultralytics names the dataset's validation split "val"; Azaion's folder is "valid".
ULTRALYTICS_SPLIT = {"train": "train", "valid": "val", "val": "val", "test": "test"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def split_image_paths(source: Path) -> list[Path]:
    """The images of a split: a folder of them, or a list file (one path a line, ``./``
    relative to the list, as ultralytics reads it)."""
    if source.is_dir():
        return sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if source.is_file():
        lines = source.read_text(encoding="utf-8").splitlines()
        return [
            source.parent / line[2:] if line.startswith("./") else Path(line)
            for line in lines
            if line
        ]
    return []


def count_images(source: Path) -> int:
    return len(split_image_paths(source))


def split_images_dir(data_yaml: Path, split: str) -> Path:
    """Image folder or list file of ``split`` (train/val/test key of data.yaml), absolute."""
    spec = yaml.safe_load(Path(data_yaml).read_text())
    entry = spec.get(split)
    if not entry:
        return Path(data_yaml).parent / "__missing__"
    base = Path(spec.get("path") or Path(data_yaml).parent)
    if not base.is_absolute():
        base = Path(data_yaml).parent / base
    return base / entry


@dataclass(frozen=True)
class SplitMetrics:
    split: str
    images: int
    precision: float
    recall: float
    map50: float
    map50_95: float
    per_class_map50_95: dict[str, float] = field(default_factory=dict)
    confusion_matrix_png: bytes | None = None

    def summary(self) -> dict[str, float]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "map50": self.map50,
            "map50_95": self.map50_95,
        }


def evaluate(
    weights: Path | str,
    data_yaml: Path | str,
    split: str = "test",
    imgsz: int = 640,
    device: str | list[int] = "cpu",
    batch: int = 8,
    plots: bool = False,
) -> SplitMetrics:
    """mAP and per-class mAP50-95 of ``weights`` on ``split`` of ``data_yaml``.

    ``plots`` also renders the confusion matrix. Classes without a ground-truth box in the
    split are absent from ``per_class_map50_95`` (their AP is undefined, not zero).
    """
    from ultralytics import YOLO

    with tempfile.TemporaryDirectory(prefix="azaion-eval-") as scratch:
        metrics = YOLO(str(weights)).val(
            data=str(data_yaml),
            split=ULTRALYTICS_SPLIT[split],
            imgsz=imgsz,
            batch=batch,
            device=device,
            workers=0,
            plots=plots,
            verbose=False,
            project=scratch,
            name="val",
            exist_ok=True,
        )
        box = metrics.box
        per_class = {
            metrics.names[int(c)]: float(box.class_result(i)[3])
            for i, c in enumerate(box.ap_class_index)
        }
        matrix = Path(metrics.save_dir) / "confusion_matrix.png"
        return SplitMetrics(
            split=split,
            images=count_images(split_images_dir(Path(data_yaml), ULTRALYTICS_SPLIT[split])),
            precision=float(box.mp),
            recall=float(box.mr),
            map50=float(box.map50),
            map50_95=float(box.map),
            per_class_map50_95=per_class,
            confusion_matrix_png=matrix.read_bytes() if plots and matrix.exists() else None,
        )


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reason: str
    candidate: SplitMetrics | None
    champion: SplitMetrics | None
    tolerance: float
    floor: float

    def per_class_markdown(self) -> str:
        """Both models' mAP50-95 per class, side by side."""
        champion = self.champion.per_class_map50_95 if self.champion else {}
        candidate = self.candidate.per_class_map50_95 if self.candidate else {}
        names = sorted(set(candidate) | set(champion))
        rows = ["| class | candidate mAP50-95 | champion mAP50-95 |", "|---|---|---|"]
        for name in names:
            cand = candidate.get(name)
            champ = champion.get(name)
            rows.append(f"| {name} | {_fmt(cand)} | {_fmt(champ)} |")
        return "\n".join(rows)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def judge(
    candidate: SplitMetrics,
    champion: SplitMetrics | None,
    tolerance: float,
    floor: float,
) -> GateVerdict:
    """Pass when the candidate is no worse than the champion (minus ``tolerance``) and
    reaches the absolute ``floor``; with no champion yet, only the floor applies."""
    score = candidate.map50_95
    failures = []
    if score < floor:
        failures.append(f"candidate mAP50-95 {score:.4f} is below the floor {floor:.4f}")
    if champion is not None and score < champion.map50_95 - tolerance:
        failures.append(
            f"candidate mAP50-95 {score:.4f} is below champion {champion.map50_95:.4f}"
            f" minus tolerance {tolerance:.4f}"
        )
    if failures:
        reason = "; ".join(failures)
    elif champion is None:
        reason = f"no champion yet; candidate mAP50-95 {score:.4f} reaches the floor {floor:.4f}"
    else:
        reason = (
            f"candidate mAP50-95 {score:.4f} ≥ champion {champion.map50_95:.4f}"
            f" − {tolerance:.4f} and ≥ floor {floor:.4f}"
        )
    return GateVerdict(
        passed=not failures,
        reason=reason,
        candidate=candidate,
        champion=champion,
        tolerance=tolerance,
        floor=floor,
    )


def gate(
    candidate_weights: Path | str,
    champion_weights: Path | str | None,
    data_yaml: Path | str,
    imgsz: int,
    device: str | list[int],
    tolerance: float,
    floor: float,
) -> GateVerdict:
    """Score candidate and champion on the test split of ``data_yaml`` and judge."""
    test_images = count_images(split_images_dir(Path(data_yaml), "test"))
    if test_images == 0:
        return GateVerdict(
            False,
            f"the test split of {data_yaml} has no images; cannot judge",
            None,
            None,
            tolerance,
            floor,
        )
    if champion_weights is not None and not Path(champion_weights).is_file():
        return GateVerdict(
            False,
            f"champion weights {champion_weights} are missing; restore them or clear champion.json",
            None,
            None,
            tolerance,
            floor,
        )
    candidate = evaluate(candidate_weights, data_yaml, "test", imgsz, device)
    champion = (
        evaluate(champion_weights, data_yaml, "test", imgsz, device) if champion_weights else None
    )
    return judge(candidate, champion, tolerance, floor)
