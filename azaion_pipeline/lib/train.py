"""YOLO training with resume, warm start, per-epoch reports and content-addressed weights.

Runs inside the training child process (``train_worker``); the parent only prepares a
``TrainingRequest`` and checks it (``preflight``) so bad input fails before a process starts.

On disk, under the Azaion ``models/`` folder:
- ``runs/azaion-{key}/attempt-{n}/`` one ultralytics run per attempt; ``key`` hashes the
  dataset version and the recipe, so a run that died is found again and resumed from its
  ``weights/last.pt``. A finished attempt holds ``completed.json`` and is never resumed.
- ``weights/{sha256[:16]}/best.pt`` + ``lineage.json``: the result, addressed by content.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, Field

from azaion_pipeline.lib.classes import NUM_MODEL_CLASSES
from azaion_pipeline.lib.dataset.labels_cache import prepare_labels_caches
from azaion_pipeline.lib.evaluate import SplitMetrics, evaluate, split_images, split_source
from azaion_pipeline.lib.hashing import sha256_file, sha256_text
from azaion_pipeline.lib.records import Record

INIT_SCRATCH = "scratch"
INIT_CHAMPION = "champion"
COMPLETED = "completed.json"
WORKER_PID = "worker.pid"


class TrainingError(RuntimeError):
    """A training request that cannot run; the message says what and why."""


# A square input size; multiples of 32, the largest stride of YOLO's detection heads.
ImageSize = Annotated[
    int, Field(ge=32, le=4096, multiple_of=32, description="Input size in px, a multiple of 32.")
]


class TrainingSettings(BaseModel):
    """The tunables of one training, with their bounds. Defaults are Azaion's production recipe
    (demo and tests go tiny). The Dagster launchpad config is this class as it stands."""

    model: str = Field(
        default="yolo11m.yaml",
        min_length=1,
        description="Architecture: a bundled ultralytics .yaml name or a local .yaml/.pt path.",
    )
    init: str = Field(
        default=INIT_SCRATCH,
        min_length=1,
        description="scratch | champion (warm start from the published champion) | weights path.",
    )
    epochs: int = Field(default=120, ge=1)
    imgsz: ImageSize = 1280
    batch: int = Field(default=11, ge=1, description="11 fits a 24 GB RTX 4090 at 1280 px.")
    patience: int = Field(default=100, ge=1, description="Early stop after N epochs without gain.")
    save_period: int = Field(
        default=1, ge=-1, description="Checkpoint every N epochs (resume points); -1: never."
    )
    seed: int = Field(default=0, ge=0)
    cache: str = Field(
        default="false",
        pattern=r"^(false|true|ram|disk)$",
        description="Image cache: false | ram | disk.",
    )
    workers: int | None = Field(
        default=None, ge=0, description="Dataloader workers; unset: the trainer resource's."
    )
    plots: bool = True
    hyperparameters: dict[str, float] = Field(
        default={}, description="Extra ultralytics train arguments (lr0, mosaic, nbs ...)."
    )
    optimizer: str = Field(
        default="auto",
        min_length=1,
        description=(
            "ultralytics optimizer. auto ignores lr0 and, below 10k iterations, picks AdamW at "
            "0.01/(4+nc) ≈ 1.2e-4 for nc=80; name one (SGD, AdamW ...) for lr0 to apply."
        ),
    )

    def train_arguments(self) -> dict[str, float | str]:
        """Extra ultralytics arguments; auto stays out, so run keys from before the optimizer
        field are unchanged."""
        optimizer = {"optimizer": self.optimizer} if self.optimizer != "auto" else {}
        return {**self.hyperparameters, **optimizer}


class TrainingRequest(BaseModel):
    """Everything the child process needs; serialised through Dagster Pipes extras.

    ``settings`` holds the resolved base model (a path when local) and dataloader workers."""

    settings: TrainingSettings
    data_yaml: Path
    dataset_version: str
    models_dir: Path
    init_weights: Path | None = None
    init_sha256: str | None = None
    device: str

    def recipe(self) -> dict[str, Any]:
        """What decides the weights (lineage, resume key). Device, workers, cache and plots
        only change speed, so a resumed run may change them."""
        s = self.settings
        return {
            "model": s.model,
            "init": s.init,
            "init_sha256": self.init_sha256,
            "epochs": s.epochs,
            "imgsz": s.imgsz,
            "batch": s.batch,
            "patience": s.patience,
            "seed": s.seed,
            "hyperparameters": dict(sorted(s.train_arguments().items())),
        }

    def key(self) -> str:
        return sha256_text([self.dataset_version, json.dumps(self.recipe(), sort_keys=True)])[:16]

    def runs_root(self) -> Path:
        return self.models_dir / "runs" / f"azaion-{self.key()}"


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    epochs: int
    box_loss: float
    cls_loss: float
    dfl_loss: float
    precision: float
    recall: float
    map50: float
    map50_95: float
    seconds: float

    def line(self) -> str:
        return (
            f"epoch {self.epoch}/{self.epochs} · box {self.box_loss:.4f} cls {self.cls_loss:.4f}"
            f" dfl {self.dfl_loss:.4f} · P {self.precision:.4f} R {self.recall:.4f}"
            f" mAP50 {self.map50:.4f} mAP50-95 {self.map50_95:.4f} · {self.seconds:.1f} s"
        )


class TrainedWeights(Record):
    """trained_model's output: content-addressed weights and everything they were made from."""

    weights_path: Path
    weights_sha256: str
    dataset_version: str
    data_yaml: Path
    imgsz: int
    class_names: dict[int, str]
    recipe: dict[str, Any]
    run_dir: Path
    first_epoch: int
    resumed_from: Path | None
    epochs_table: list[dict[str, float]]
    seconds: float
    test: SplitMetrics | None  # scores on the test split (plot kept as a file, not inline)
    results_plot: Path | None
    confusion_matrix_plot: Path | None

    @property
    def model_version(self) -> str:
        return self.weights_sha256[:16]


# -- checks that run before any training --------------------------------------------------


def check_dataset(data_yaml: Path) -> int:
    """Number of training images; fails when there is nothing to train on."""
    if not Path(data_yaml).is_file():
        raise TrainingError(f"data.yaml not found: {data_yaml}")
    spec = yaml.safe_load(Path(data_yaml).read_text())
    if int(spec.get("nc", 0)) != NUM_MODEL_CLASSES:
        raise TrainingError(
            f"{data_yaml} declares nc={spec.get('nc')}; Azaion models are trained with "
            f"nc={NUM_MODEL_CLASSES} so champion weights always fit"
        )
    images = len(split_images(data_yaml, "train"))
    if images == 0:
        raise TrainingError(
            f"the dataset has 0 training images ({split_source(data_yaml, 'train')}); "
            "nothing to train on. "
            "Check that raw_annotations found valid annotations."
        )
    return images


def resolve_device(requested: str) -> str:
    """``auto`` → first GPU or CPU; ``cpu``; ``cuda`` → GPU 0; ``0`` / ``0,1`` → those GPUs."""
    import torch

    wanted = requested.strip().lower()
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if wanted == "auto":
        return "0" if gpus else "cpu"
    if wanted == "cpu":
        return "cpu"
    try:
        ids = [0] if wanted == "cuda" else [int(x) for x in wanted.split(",") if x.strip()]
    except ValueError:
        raise TrainingError(
            f"unknown device '{requested}': use auto, cpu, cuda or GPU ids such as 0,1"
        ) from None
    if not ids:
        raise TrainingError(f"device '{requested}' names no GPU ids")
    if gpus == 0:
        raise TrainingError(
            f"device '{requested}' asks for a CUDA GPU but none is visible to PyTorch "
            "(torch.cuda.is_available() is False); use device 'auto' or 'cpu'"
        )
    missing = [i for i in ids if i >= gpus]
    if missing:
        raise TrainingError(
            f"device '{requested}': GPU ids {missing} do not exist ({gpus} visible)"
        )
    return ",".join(str(i) for i in ids)


def resolve_base_model(model: str, base_models_dir: Path | None) -> str:
    """A local architecture file; ultralytics' bundled ``.yaml`` names are fine (no download),
    ``.pt`` weights must already be on disk: downloads are never attempted."""
    for candidate in (Path(model), (base_models_dir or Path()) / model):
        if candidate.is_file():
            return str(candidate.absolute())
    if model.endswith(".yaml"):
        return model  # built from ultralytics' packaged configs
    raise TrainingError(
        f"base model '{model}' is not a local file (looked in {base_models_dir or 'the cwd'}); "
        "weights are never downloaded: put the .pt there or use an architecture .yaml"
    )


def preflight(request: TrainingRequest) -> str:
    """Everything that can fail before training starts; returns the resolved device."""
    check_dataset(request.data_yaml)
    if request.init_weights is not None and not request.init_weights.is_file():
        raise TrainingError(f"warm-start weights not found: {request.init_weights}")
    return resolve_device(request.device)


# -- runs, resume ------------------------------------------------------------------------


def attempts(root: Path) -> list[Path]:
    found = [p for p in root.glob("attempt-*") if p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def resumable_checkpoint(root: Path) -> Path | None:
    """``last.pt`` of the newest attempt that never completed, if any."""
    runs = attempts(root)
    if not runs or (runs[-1] / COMPLETED).exists():
        return None
    last = runs[-1] / "weights" / "last.pt"
    return last if last.is_file() else None


def checkpoint_epochs(checkpoint: Path) -> int:
    """Epochs completed in a checkpoint. The checkpoint, not results.csv, says where a resume
    starts: a kill between ultralytics writing the csv row and saving last.pt leaves the csv
    one epoch ahead."""
    import torch

    return int(torch.load(checkpoint, map_location="cpu", weights_only=False)["epoch"]) + 1


def read_results_csv(path: Path) -> list[dict[str, float]]:
    """One row per epoch. A resumed attempt re-trains the epochs after its checkpoint and
    ultralytics appends them again; the later row is the one that counts."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return sorted({row["epoch"]: row for row in rows}.values(), key=lambda row: row["epoch"])


def _next_attempt(root: Path) -> Path:
    runs = attempts(root)
    number = int(runs[-1].name.split("-")[-1]) + 1 if runs else 1
    return root / f"attempt-{number}"


# -- training ----------------------------------------------------------------------------


def _epoch_report(trainer) -> EpochReport:
    losses = trainer.label_loss_items(trainer.tloss, prefix="train") if trainer.tloss else {}
    metrics = trainer.metrics or {}
    return EpochReport(
        epoch=trainer.epoch + 1,
        epochs=trainer.epochs,
        box_loss=float(losses.get("train/box_loss", float("nan"))),
        cls_loss=float(losses.get("train/cls_loss", float("nan"))),
        dfl_loss=float(losses.get("train/dfl_loss", float("nan"))),
        precision=float(metrics.get("metrics/precision(B)", 0.0)),
        recall=float(metrics.get("metrics/recall(B)", 0.0)),
        map50=float(metrics.get("metrics/mAP50(B)", 0.0)),
        map50_95=float(metrics.get("metrics/mAP50-95(B)", 0.0)),
        seconds=float(trainer.epoch_time or 0.0),
    )


def store_weights(best: Path, models_dir: Path, lineage: dict[str, Any]) -> tuple[Path, str]:
    """Copy ``best`` to ``weights/{sha[:16]}/best.pt`` with its lineage; same bytes, same path."""
    digest = sha256_file(best)
    folder = models_dir / "weights" / digest[:16]
    target = folder / "best.pt"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        staging = folder / "best.pt.tmp"
        shutil.copyfile(best, staging)
        os.replace(staging, target)
    (folder / "lineage.json").write_text(json.dumps(lineage, indent=2, default=str))
    return target, digest


def train(request: TrainingRequest, on_epoch: Callable[[EpochReport], None]) -> TrainedWeights:
    """Train (or resume) per ``request``; ``on_epoch`` hears each epoch as it finishes."""
    from ultralytics import YOLO

    device = preflight(request)
    # Our versions' label caches come from the catalogue: ultralytics scans nothing.
    prepare_labels_caches(request.data_yaml)
    root = request.runs_root()
    last = resumable_checkpoint(root)
    run_dir = last.parents[1] if last else _next_attempt(root)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / WORKER_PID).write_text(str(os.getpid()))
    first_epoch = checkpoint_epochs(last) + 1 if last else 1
    # speed-only settings: ultralytics lets a resumed run change exactly these
    settings = request.settings
    speed = {
        "device": device,
        "workers": settings.workers,
        "cache": {"false": False, "true": "ram"}.get(settings.cache, settings.cache),
        "plots": settings.plots,
        "save_period": settings.save_period,
    }
    if last:
        model = YOLO(str(last))
        arguments = {"resume": str(last), **speed}
    else:
        model = YOLO(settings.model)
        if request.init_weights is not None:
            model.load(str(request.init_weights))  # warm start: nc=80 on both sides
        arguments = {
            "data": str(request.data_yaml),
            "epochs": settings.epochs,
            "imgsz": settings.imgsz,
            "batch": settings.batch,
            "patience": settings.patience,
            "seed": settings.seed,
            "project": str(run_dir.parent),
            "name": run_dir.name,
            "exist_ok": True,
            "verbose": False,
            **settings.train_arguments(),
            **speed,
        }

    reported: set[int] = set()

    def report(trainer) -> None:
        # ultralytics calls this once more after training for the best.pt validation;
        # only in-loop validations carry val losses, so that extra call is skipped.
        if "val/box_loss" not in (trainer.metrics or {}):
            return
        epoch_report = _epoch_report(trainer)
        if epoch_report.epoch not in reported:
            reported.add(epoch_report.epoch)
            on_epoch(epoch_report)

    model.add_callback("on_fit_epoch_end", report)
    started = time.perf_counter()
    model.train(**arguments)
    seconds = time.perf_counter() - started

    lineage = {
        "dataset_version": request.dataset_version,
        "data_yaml": str(request.data_yaml),
        "recipe": request.recipe(),
        "run_dir": str(run_dir),
        "resumed_from": str(last) if last else None,
    }
    weights, digest = store_weights(run_dir / "weights" / "best.pt", request.models_dir, lineage)
    test_images = len(split_images(request.data_yaml, "test"))
    test = (
        evaluate(weights, request.data_yaml, "test", settings.imgsz, device, settings.batch, True)
        if test_images
        else None
    )
    confusion_plot = None
    if test and test.confusion_matrix_png:
        confusion_plot = run_dir / "test_confusion_matrix.png"
        confusion_plot.write_bytes(test.confusion_matrix_png)
        test = replace(test, confusion_matrix_png=None)
    results_plot = run_dir / "results.png"
    trained = TrainedWeights(
        weights_path=weights,
        weights_sha256=digest,
        dataset_version=request.dataset_version,
        data_yaml=request.data_yaml,
        imgsz=settings.imgsz,
        class_names=yaml.safe_load(request.data_yaml.read_text())["names"],
        recipe=request.recipe(),
        run_dir=run_dir,
        first_epoch=first_epoch,
        resumed_from=last,
        epochs_table=read_results_csv(run_dir / "results.csv"),
        seconds=seconds,
        test=test,
        results_plot=results_plot if results_plot.exists() else None,
        confusion_matrix_plot=confusion_plot,
    )
    (run_dir / COMPLETED).write_text(
        json.dumps({"weights": str(weights), "sha256": digest, **lineage}, default=str)
    )
    return trained


# -- metadata ----------------------------------------------------------------------------

EPOCH_COLUMNS = {
    "epoch": "epoch",
    "train/box_loss": "box",
    "train/cls_loss": "cls",
    "train/dfl_loss": "dfl",
    "metrics/precision(B)": "P",
    "metrics/recall(B)": "R",
    "metrics/mAP50(B)": "mAP50",
    "metrics/mAP50-95(B)": "mAP50-95",
    "time": "elapsed s",
}


def epochs_markdown(table: list[dict[str, float]]) -> str:
    rows = [
        "| " + " | ".join(EPOCH_COLUMNS.values()) + " |",
        "|" + "---|" * len(EPOCH_COLUMNS),
    ]
    for row in table:
        cells = [
            str(int(row[k])) if k == "epoch" else f"{row.get(k, float('nan')):.4f}"
            for k in EPOCH_COLUMNS
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def resolve_init(init: str, champion_weights: Path | None) -> tuple[Path | None, str | None]:
    """Warm-start weights and their hash for ``init`` (scratch | champion | a path)."""
    if init == INIT_SCRATCH:
        return None, None
    if init == INIT_CHAMPION:
        if champion_weights is None:
            raise TrainingError(
                "init 'champion' but no champion has been published yet; "
                "train with init 'scratch' first"
            )
        weights = champion_weights
    else:
        weights = Path(init)
    if not weights.is_file():
        raise TrainingError(f"warm-start weights not found: {weights} (init '{init}')")
    return weights.absolute(), sha256_file(weights)


def describe_failure(request: TrainingRequest, error: Exception) -> str:
    """A crashed or killed child: say what happened and what the next run will do."""
    last = resumable_checkpoint(request.runs_root())
    if last is None:
        follow_up = "no checkpoint was saved, so the next run starts from epoch 1"
    else:
        done = checkpoint_epochs(last)
        follow_up = (
            f"its checkpoint after epoch {done} is kept at {last}; the next run with the same "
            f"dataset version and config resumes from epoch {done + 1}"
        )
    return f"training process failed ({error}); {follow_up}"
