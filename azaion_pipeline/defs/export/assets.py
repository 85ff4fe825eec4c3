"""Exports of trained_model (ONNX, CoreML, TensorRT) and the checks that verify them."""

import json
from pathlib import Path

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.config import checked, config_of
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.export import (
    COREML_RUNTIME_NOTE,
    ExportedFile,
    ExportedModel,
    ExportSettings,
    TensorrtExport,
    export_coreml,
    export_onnx,
    export_tensorrt,
    inspect_coreml,
    tensorrt_unavailable_reason,
)
from azaion_pipeline.lib.parity import ParityThresholds, check_parity
from azaion_pipeline.lib.train import ImageSize, TrainedWeights


class ExportConfig(dg.Config, ExportSettings):
    """What is baked into an export: ``ExportSettings`` and the input size."""

    imgsz: ImageSize | None = Field(
        default=None, description="Input size (a multiple of 32); default: the training imgsz."
    )


class ParityConfig(dg.Config, ParityThresholds):
    """How closely onnxruntime must agree with PyTorch (``ParityThresholds``)."""


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


def tensorrt_export_metadata(record: TensorrtExport) -> dict:
    """What the UI shows for a TensorrtExport: the engine's export, or why there is none."""
    if record.engine is None:
        return {"skipped_reason": record.skipped_reason or ""}
    return exported_model_metadata(record.engine)


def _settings(config: ExportConfig) -> ExportSettings:
    return ExportSettings.model_validate(config.model_dump(exclude={"imgsz"}))


def _record(file: ExportedFile, config: ExportConfig, source: TrainedWeights) -> ExportedModel:
    return ExportedModel(
        file=file,
        imgsz=_imgsz(config, source),
        source=source,
        **_settings(config).model_dump(),
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
    config_schema=checked(ExportConfig),
    description="ONNX with NMS inside, dynamic batch 1..max_batch, class names in metadata.",
)
def onnx_model(
    context: dg.AssetExecutionContext, storage: AzaionStorage, trained_model: TrainedWeights
) -> dg.Output[ExportedModel]:
    config = config_of(context, ExportConfig)
    exported = export_onnx(
        trained_model.weights_path,
        _imgsz(config, trained_model),
        _exports_root(storage),
        _settings(config),
        extra_metadata={
            "model_version": trained_model.model_version,
            "dataset_version": trained_model.dataset_version,
        },
    )
    return _output(exported, config, trained_model)


@dg.asset(
    group_name="export",
    kinds={"coreml"},
    config_schema=checked(ExportConfig),
    description="CoreML .mlpackage (NMS inside) zipped into one file for transport.",
)
def coreml_model(
    context: dg.AssetExecutionContext, storage: AzaionStorage, trained_model: TrainedWeights
) -> dg.Output[ExportedModel]:
    config = config_of(context, ExportConfig)
    exported = export_coreml(
        trained_model.weights_path,
        _imgsz(config, trained_model),
        _exports_root(storage),
        _settings(config),
    )
    return _output(exported, config, trained_model)


@dg.asset(
    group_name="export",
    kinds={"tensorrt"},
    config_schema=checked(ExportConfig),
    description=(
        "TensorRT engine for this machine's GPU. Without CUDA the record says why no engine "
        "was built (not a failure), and published_model goes on without one."
    ),
)
def tensorrt_model(
    context: dg.AssetExecutionContext, storage: AzaionStorage, trained_model: TrainedWeights
) -> dg.Output[TensorrtExport]:
    config = config_of(context, ExportConfig)
    reason = tensorrt_unavailable_reason()
    if reason:
        context.log.warning(f"tensorrt_model skipped: {reason}")
        record = TensorrtExport(engine=None, skipped_reason=reason)
        return dg.Output(
            record,
            metadata=tensorrt_export_metadata(record),
            data_version=dg.DataVersion(f"none-{trained_model.model_version}"),
        )
    exported = export_tensorrt(
        trained_model.weights_path,
        _imgsz(config, trained_model),
        _exports_root(storage),
        _settings(config),
    )
    record = TensorrtExport(engine=_record(exported, config, trained_model))
    return dg.Output(
        record,
        metadata=tensorrt_export_metadata(record),
        data_version=dg.DataVersion(exported.sha256),
    )


@dg.asset_check(
    asset=onnx_model,
    blocking=True,
    config_schema=checked(ParityConfig),
    description=(
        "onnxruntime vs PyTorch on the valid+test images: mAP50-95 within tolerance and "
        "every box matched by a same-class box with IoU ≥ min_iou."
    ),
)
def onnx_matches_pytorch(
    context: dg.AssetCheckExecutionContext, onnx_model: ExportedModel
) -> dg.AssetCheckResult:
    config = config_of(context, ParityConfig)
    # The export's own thresholds, so both sides filter and suppress boxes the same way.
    report = check_parity(
        onnx_path=onnx_model.file.path,
        weights=onnx_model.source.weights_path,
        data_yaml=onnx_model.source.data_yaml,
        imgsz=onnx_model.imgsz,
        conf=onnx_model.conf,
        iou=onnx_model.iou,
        batch=onnx_model.max_batch,
        thresholds=ParityThresholds.model_validate(config.model_dump()),
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
