"""Exports of trained weights: ONNX (NMS inside, dynamic batch), CoreML, TensorRT.

Each export runs in a scratch folder (ultralytics writes next to its input) and lands at
``models/exports/{sha256[:16]}/{file}``: one file per export, addressed by content.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from azaion_pipeline.lib.hashing import sha256_file
from azaion_pipeline.lib.records import Record
from azaion_pipeline.lib.train import TrainedWeights

ONNX_FILE = "azaion.onnx"
COREML_FILE = "azaion.mlpackage.zip"
# A zip's entries carry timestamps; a fixed one keeps the same package at the same hash.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
COREML_RUNTIME_NOTE = (
    "CoreML models execute only on Apple platforms; on Linux the package is checked as a "
    "spec (structure, input shape, class labels), not run."
)


class ExportedFile(Record):
    """One export file at its content-addressed path."""

    path: Path
    sha256: str
    size_bytes: int
    format: str
    seconds: float


class ExportSettings(BaseModel):
    """What an export bakes in besides its input size: the batch range and in-graph NMS."""

    max_batch: int = Field(default=8, ge=1, le=64, description="Largest batch the model accepts.")
    conf: float = Field(
        default=0.001,
        ge=0.0,
        le=1.0,
        description=(
            "In-graph NMS score floor. Kept at ultralytics' validation floor so the evaluation "
            "sees the whole precision-recall curve; clients apply the per-class thresholds "
            "shipped in the release manifest."
        ),
    )
    iou: float = Field(default=0.7, gt=0.0, le=1.0, description="NMS IoU threshold in-graph.")

    def batched_nms_arguments(self) -> dict:
        """ultralytics export arguments for a dynamic batch 1..max_batch with NMS in the graph."""
        return {
            "dynamic": True,
            "batch": self.max_batch,
            "nms": True,
            "conf": self.conf,
            "iou": self.iou,
        }


class ExportedModel(Record, ExportSettings):
    """An export asset's output: the file, the settings baked into it (``ExportSettings`` and
    the input size), and the weights it came from."""

    file: ExportedFile
    imgsz: int
    source: TrainedWeights  # lineage: model and dataset versions, class names, data.yaml

    @property
    def model_version(self) -> str:
        return self.source.model_version

    @property
    def dataset_version(self) -> str:
        return self.source.dataset_version


class TensorrtExport(Record):
    """tensorrt_model's output: the engine, or why this host could not build one (no CUDA)."""

    engine: ExportedModel | None
    skipped_reason: str | None = None


class ExportError(RuntimeError):
    """An export that could not be produced; the message says why."""


def engine_filename(major: int, minor: int, sm_count: int) -> str:
    """Azaion's TensorRT name: engines only run on the GPU generation they were built for."""
    return f"azaion.cc_{major}.{minor}_sm_{sm_count}.engine"


def tensorrt_unavailable_reason() -> str | None:
    """Why a TensorRT engine cannot be built here, or None when it can."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU is visible; TensorRT engines are built on the GPU that runs them"
    if importlib.util.find_spec("tensorrt") is None:
        return "the tensorrt Python package is not installed (pip install tensorrt)"
    return None


def _store(produced: Path, exports_root: Path, filename: str, fmt: str, started: float):
    digest = sha256_file(produced)
    folder = exports_root / digest[:16]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / filename
    if not target.exists():
        staging = folder / f"{filename}.tmp"
        shutil.move(str(produced), staging)
        os.replace(staging, target)
    return ExportedFile(
        path=target,
        sha256=digest,
        size_bytes=target.stat().st_size,
        format=fmt,
        seconds=time.perf_counter() - started,
    )


def _ultralytics_export(weights: Path, scratch: Path, **arguments) -> Path:
    from ultralytics import YOLO

    local = scratch / "azaion.pt"
    shutil.copyfile(weights, local)
    try:
        return Path(YOLO(str(local)).export(**arguments))
    except Exception as exc:
        raise ExportError(f"{arguments['format']} export of {weights} failed: {exc}") from exc


def export_onnx(
    weights: Path,
    imgsz: int,
    exports_root: Path,
    settings: ExportSettings,
    extra_metadata: dict[str, str] | None = None,
) -> ExportedFile:
    """ONNX with NMS in the graph, dynamic batch (1..max_batch), simplified by onnxslim.

    ultralytics stores class names, imgsz and stride in the model metadata; ``extra_metadata``
    (model and dataset versions) is added next to them.
    """
    import onnx

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="azaion-onnx-") as scratch:
        produced = _ultralytics_export(
            Path(weights),
            Path(scratch),
            format="onnx",
            imgsz=imgsz,
            simplify=True,  # onnxslim
            **settings.batched_nms_arguments(),
        )
        model = onnx.load(str(produced))
        entries = {p.key: p.value for p in model.metadata_props}
        entries.update({"max_batch": str(settings.max_batch), **(extra_metadata or {})})
        del model.metadata_props[:]
        for key, value in sorted(entries.items()):
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, str(produced))
        return _store(produced, exports_root, ONNX_FILE, "onnx", started)


def zip_package(package: Path, archive: Path) -> Path:
    """A directory (.mlpackage) as one deterministic zip: sorted entries, fixed timestamps."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(p for p in package.rglob("*") if p.is_file()):
            entry = zipfile.ZipInfo(str(Path(package.name) / path.relative_to(package)), ZIP_EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(entry, path.read_bytes())
    return archive


def export_coreml(
    weights: Path, imgsz: int, exports_root: Path, settings: ExportSettings
) -> ExportedFile:
    """CoreML .mlpackage with NMS, zipped into a single file for transport."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="azaion-coreml-") as scratch:
        package = _ultralytics_export(
            Path(weights),
            Path(scratch),
            format="coreml",
            imgsz=imgsz,
            nms=True,
            conf=settings.conf,
            iou=settings.iou,
        )
        archive = zip_package(package, Path(scratch) / COREML_FILE)
        return _store(archive, exports_root, COREML_FILE, "coreml", started)


def export_tensorrt(
    weights: Path, imgsz: int, exports_root: Path, settings: ExportSettings
) -> ExportedFile:
    """A TensorRT engine for the GPU in this machine (dynamic batch, NMS inside)."""
    import torch

    reason = tensorrt_unavailable_reason()
    if reason:
        raise ExportError(reason)
    started = time.perf_counter()
    props = torch.cuda.get_device_properties(0)
    with tempfile.TemporaryDirectory(prefix="azaion-trt-") as scratch:
        produced = _ultralytics_export(
            Path(weights),
            Path(scratch),
            format="engine",
            imgsz=imgsz,
            device=0,
            **settings.batched_nms_arguments(),
        )
        name = engine_filename(props.major, props.minor, props.multi_processor_count)
        return _store(produced, exports_root, name, "tensorrt", started)


@dataclass(frozen=True)
class CoremlInspection:
    passed: bool
    problems: list[str]
    input_shape: tuple[int, int] | None
    class_labels: int


def inspect_coreml(archive: Path, imgsz: int, names: list[str]) -> CoremlInspection:
    """Load the zipped package as a spec and compare its input size and class labels."""
    import coremltools as ct

    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="azaion-coreml-check-") as scratch:
        try:
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(scratch)
            package = next(Path(scratch).glob("*.mlpackage"))
            spec = ct.utils.load_spec(str(package))
        except Exception as exc:
            return CoremlInspection(
                False, [f"cannot load {archive} as a CoreML spec: {exc}"], None, 0
            )
    image = spec.description.input[0].type.imageType
    shape = (int(image.height), int(image.width))
    if shape != (imgsz, imgsz):
        problems.append(f"input is {shape[0]}x{shape[1]}, expected {imgsz}x{imgsz}")
    labels: list[str] = []
    if spec.WhichOneof("Type") == "pipeline":
        for model in spec.pipeline.models:
            if model.WhichOneof("Type") == "nonMaximumSuppression":
                labels = list(model.nonMaximumSuppression.stringClassLabels.vector)
    if labels != list(names):
        problems.append(
            f"class labels differ from the model's: {len(labels)} labels vs {len(names)} names"
        )
    return CoremlInspection(not problems, problems, shape, len(labels))
