"""Scoring a YOLO ``.pt`` on one dataset split with ultralytics' own validator.

This is the training run's report of its weights. Promotion compares exports, not ``.pt``
files: see ``lib/evaluation`` (one evaluator for every comparison).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from azaion_pipeline.lib.dataset.annotations import IMAGE_SUFFIXES

# ultralytics names the dataset's validation split "val"; Azaion's folder is "valid".
ULTRALYTICS_SPLIT = {"train": "train", "valid": "val", "val": "val", "test": "test"}


def split_source(data_yaml: Path, split: str) -> Path:
    """What data.yaml names for ``split`` (train/valid/val/test): a list file or a folder."""
    data_yaml = Path(data_yaml)
    spec = yaml.safe_load(data_yaml.read_text())
    entry = spec.get(ULTRALYTICS_SPLIT[split])
    if not entry:
        return data_yaml.parent / "__missing__"
    base = Path(spec.get("path") or data_yaml.parent)
    if not base.is_absolute():
        base = data_yaml.parent / base
    return base / entry


def split_images(data_yaml: Path, split: str) -> list[Path]:
    """The images of ``split`` exactly as ultralytics reads them from ``data_yaml``.

    A dataset version names list files (one ``./``-relative path a line); its images folders
    are links into the store, which holds every split's files, so only the list is read.
    A plain folder of images (hand-made datasets) is listed as is.
    """
    source = split_source(data_yaml, split)
    if source.is_file():
        lines = source.read_text(encoding="utf-8").splitlines()
        return [
            source.parent / line[2:] if line.startswith("./") else Path(line)
            for line in lines
            if line
        ]
    if source.is_dir():
        return sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return []


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
            images=len(split_images(Path(data_yaml), split)),
            precision=float(box.mp),
            recall=float(box.mr),
            map50=float(box.map50),
            map50_95=float(box.map),
            per_class_map50_95=per_class,
            confusion_matrix_png=matrix.read_bytes() if plots and matrix.exists() else None,
        )
