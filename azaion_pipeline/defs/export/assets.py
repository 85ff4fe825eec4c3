"""Exports of trained_model (ONNX, CoreML, TensorRT) and the checks that verify them."""

import json
from pathlib import Path

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.export import (
    COREML_RUNTIME_NOTE,
    ExportedFile,
    ExportedModel,
    TensorrtExport,
    export_coreml,
    export_onnx,
    export_tensorrt,
    inspect_coreml,
    tensorrt_unavailable_reason,
)
from azaion_pipeline.lib.parity import check_parity
from azaion_pipeline.lib.train import TrainedWeights


class ExportConfig(dg.Config):
    imgsz: int | None = Field(default=None, description="Input size; default: the training imgsz.")
    max_batch: int = Field(default=8, ge=1, description="Largest batch the model accepts.")
    conf: float = Field(default=0.25, ge=0.0, le=1.0, description="NMS score threshold in-graph.")
    iou: float = Field(default=0.7, gt=0.0, le=1.0, description="NMS IoU threshold in-graph.")


class ParityConfig(dg.Config):
    map_tolerance: float = Field(default=0.01, ge=0.0, description="Allowed mAP50-95 gap.")
    min_iou: float = Field(default=0.9, gt=0.0, le=1.0, description="IoU of a matched box pair.")
    min_matched: float = Field(default=0.95, ge=0.0, le=1.0, description="Share of boxes matched.")
    max_images: int = Field(default=200, ge=1, description="valid+test images compared.")


def exported_model_metadata(record: ExportedModel) -> dict:
    """What the UI shows for an ExportedModel."""
    return {
        "path": dg.MetadataValue.path(str(record.file.path)),
        "sha256": record.file.sha256,
        "size_bytes": record.file.size_bytes,
        "format": record.file.format,
        "export_seconds": round(record.file.seconds, 2),
        "model_version": record.model_version,
        "dataset_version": record.dataset_version,
        "imgsz": record.imgsz,
        "conf": record.conf,
        "iou": record.iou,
        "max_batch": record.max_batch,
    }


def _record(file: ExportedFile, config: ExportConfig, source: TrainedWeights) -> ExportedModel:
    return ExportedModel(
        file=file,
        imgsz=_imgsz(config, source),
        conf=config.conf,
        iou=config.iou,
        max_batch=config.max_batch,
        source=source,
    )


def _output(
    file: ExportedFile, config: ExportConfig, source: TrainedWeights
) -> dg.Output[ExportedModel]:
    record = _record(file, config, source)
    return dg.Output(
        record, metadata=exported_model_metadata(record), data_version=dg.DataVersion(file.sha256)
    )


def _exports_root(storage: AzaionStorage) -> Path:
    return storage.layout().models / "exports"


def _imgsz(config: ExportConfig, source: TrainedWeights) -> int:
    return config.imgsz or source.imgsz


@dg.asset(
    group_name="export",
    kinds={"onnx"},
    description="ONNX with NMS inside, dynamic batch 1..max_batch, class names in metadata.",
)
def onnx_model(
    config: ExportConfig, storage: AzaionStorage, trained_model: TrainedWeights
) -> dg.Output[ExportedModel]:
    exported = export_onnx(
        trained_model.weights_path,
        _imgsz(config, trained_model),
        _exports_root(storage),
        max_batch=config.max_batch,
        conf=config.conf,
        iou=config.iou,
        extra_metadata={
            "model_version": trained_model.model_version,
            "dataset_version": trained_model.dataset_version,
        },
    )
    return _output(exported, config, trained_model)


@dg.asset(
    group_name="export",
    kinds={"coreml"},
    description="CoreML .mlpackage (NMS inside) zipped into one file for transport.",
)
def coreml_model(
    config: ExportConfig, storage: AzaionStorage, trained_model: TrainedWeights
) -> dg.Output[ExportedModel]:
    exported = export_coreml(
        trained_model.weights_path,
        _imgsz(config, trained_model),
        _exports_root(storage),
        config.conf,
        config.iou,
    )
    return _output(exported, config, trained_model)


@dg.asset(
    group_name="export",
    kinds={"tensorrt"},
    description=(
        "TensorRT engine for this machine's GPU. Without CUDA the record says why no engine "
        "was built (not a failure), and published_model goes on without one."
    ),
)
def tensorrt_model(
    context: dg.AssetExecutionContext,
    config: ExportConfig,
    storage: AzaionStorage,
    trained_model: TrainedWeights,
) -> dg.Output[TensorrtExport]:
    reason = tensorrt_unavailable_reason()
    if reason:
        context.log.warning(f"tensorrt_model skipped: {reason}")
        record = TensorrtExport(engine=None, skipped_reason=reason)
        return dg.Output(
            record,
            metadata={"skipped_reason": reason, "model_version": trained_model.model_version},
            data_version=dg.DataVersion(f"none-{trained_model.model_version}"),
        )
    exported = export_tensorrt(
        trained_model.weights_path,
        _imgsz(config, trained_model),
        _exports_root(storage),
        config.max_batch,
        config.conf,
        config.iou,
    )
    engine = _record(exported, config, trained_model)
    return dg.Output(
        TensorrtExport(engine=engine),
        metadata=exported_model_metadata(engine),
        data_version=dg.DataVersion(exported.sha256),
    )


@dg.asset_check(
    asset=onnx_model,
    blocking=True,
    description=(
        "onnxruntime vs PyTorch on the valid+test images: mAP50-95 within tolerance and "
        "every box matched by a same-class box with IoU ≥ min_iou."
    ),
)
def onnx_matches_pytorch(config: ParityConfig, onnx_model: ExportedModel) -> dg.AssetCheckResult:
    # The export's own thresholds, so both sides filter and suppress boxes the same way.
    report = check_parity(
        onnx_path=onnx_model.file.path,
        weights=onnx_model.source.weights_path,
        data_yaml=onnx_model.source.data_yaml,
        imgsz=onnx_model.imgsz,
        conf=onnx_model.conf,
        iou=onnx_model.iou,
        map_tolerance=config.map_tolerance,
        min_iou=config.min_iou,
        min_matched=config.min_matched,
        max_images=config.max_images,
        batch=onnx_model.max_batch,
    )
    return dg.AssetCheckResult(
        passed=report.passed,
        metadata={
            "reason": report.reason,
            "images": report.images,
            "conf": onnx_model.conf,
            "iou": onnx_model.iou,
            "pytorch_map50_95": report.pytorch_map50_95,
            "onnx_map50_95": report.onnx_map50_95,
            "pytorch_boxes": report.pytorch_boxes,
            "onnx_boxes": report.onnx_boxes,
            "matched_fraction": report.matched_fraction,
            "mean_matched_iou": report.mean_matched_iou,
        },
    )


@dg.asset_check(
    asset=coreml_model,
    description="The zipped package loads as a CoreML spec; input size and class labels match.",
)
def coreml_spec_matches(coreml_model: ExportedModel) -> dg.AssetCheckResult:
    names = [coreml_model.source.class_names[i] for i in sorted(coreml_model.source.class_names)]
    inspection = inspect_coreml(coreml_model.file.path, coreml_model.imgsz, names)
    return dg.AssetCheckResult(
        passed=inspection.passed,
        metadata={
            "problems": dg.MetadataValue.json(inspection.problems),
            "input_shape": json.dumps(inspection.input_shape),
            "class_labels": inspection.class_labels,
            "runtime": COREML_RUNTIME_NOTE,
        },
    )
