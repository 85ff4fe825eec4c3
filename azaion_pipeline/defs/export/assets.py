"""Exports of trained_model (ONNX, CoreML, TensorRT) and the checks that verify them."""

import json
from pathlib import Path

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.lineage import upstream_metadata
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.export import (
    COREML_RUNTIME_NOTE,
    ExportedFile,
    export_coreml,
    export_onnx,
    export_tensorrt,
    inspect_coreml,
    tensorrt_unavailable_reason,
)
from azaion_pipeline.lib.parity import check_parity


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


def _export_result(
    exported: ExportedFile, model: dict, imgsz: int, extra: dict | None = None
) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(exported.path)),
            "sha256": exported.sha256,
            "size_bytes": exported.size_bytes,
            "model_version": model["model_version"],
            "dataset_version": model["dataset_version"],
            "imgsz": imgsz,
            "format": exported.format,
            "export_seconds": round(exported.seconds, 2),
            **(extra or {}),
        },
        data_version=dg.DataVersion(exported.sha256),
    )


def _exports_root(storage: AzaionStorage) -> Path:
    return storage.layout().models / "exports"


def _source(context: dg.AssetExecutionContext, config: ExportConfig) -> tuple[dict, Path, int]:
    """trained_model's metadata, its weights and the export input size."""
    model = upstream_metadata(context, "trained_model")
    return model, Path(model["weights_path"]), config.imgsz or int(model["imgsz"])


@dg.asset(
    group_name="export",
    kinds={"onnx"},
    deps=["trained_model"],
    description="ONNX with NMS inside, dynamic batch 1..max_batch, class names in metadata.",
)
def onnx_model(
    context: dg.AssetExecutionContext, config: ExportConfig, storage: AzaionStorage
) -> dg.MaterializeResult:
    model, weights, imgsz = _source(context, config)
    exported = export_onnx(
        weights,
        imgsz,
        _exports_root(storage),
        max_batch=config.max_batch,
        conf=config.conf,
        iou=config.iou,
        extra_metadata={
            "model_version": str(model["model_version"]),
            "dataset_version": str(model["dataset_version"]),
        },
    )
    return _export_result(
        exported, model, imgsz, {"max_batch": config.max_batch, "conf": config.conf}
    )


@dg.asset(
    group_name="export",
    kinds={"coreml"},
    deps=["trained_model"],
    description="CoreML .mlpackage (NMS inside) zipped into one file for transport.",
)
def coreml_model(
    context: dg.AssetExecutionContext, config: ExportConfig, storage: AzaionStorage
) -> dg.MaterializeResult:
    model, weights, imgsz = _source(context, config)
    exported = export_coreml(weights, imgsz, _exports_root(storage), config.conf, config.iou)
    return _export_result(exported, model, imgsz)


@dg.asset(
    group_name="export",
    kinds={"tensorrt"},
    deps=["trained_model"],
    output_required=False,
    description="TensorRT engine for this machine's GPU; skipped (not failed) without CUDA.",
)
def tensorrt_model(context: dg.AssetExecutionContext, config: ExportConfig, storage: AzaionStorage):
    reason = tensorrt_unavailable_reason()
    if reason:
        context.log.warning(f"tensorrt_model skipped: {reason}")
        context.log_event(
            dg.AssetObservation(asset_key=context.asset_key, metadata={"skipped_reason": reason})
        )
        return
    model, weights, imgsz = _source(context, config)
    exported = export_tensorrt(
        weights, imgsz, _exports_root(storage), config.max_batch, config.conf
    )
    yield _export_result(exported, model, imgsz, {"max_batch": config.max_batch})


@dg.asset_check(
    asset="onnx_model",
    blocking=True,
    description=(
        "onnxruntime vs PyTorch on the valid+test images: mAP50-95 within tolerance and "
        "every box matched by a same-class box with IoU ≥ min_iou."
    ),
)
def onnx_matches_pytorch(
    context: dg.AssetCheckExecutionContext, config: ParityConfig
) -> dg.AssetCheckResult:
    exported = upstream_metadata(context, "onnx_model")
    model = upstream_metadata(context, "trained_model")
    report = check_parity(
        onnx_path=Path(exported["path"]),
        weights=Path(model["weights_path"]),
        data_yaml=Path(model["data_yaml"]),
        imgsz=int(exported["imgsz"]),
        conf=float(exported.get("conf", 0.25)),
        map_tolerance=config.map_tolerance,
        min_iou=config.min_iou,
        min_matched=config.min_matched,
        max_images=config.max_images,
        batch=int(exported.get("max_batch", 8)),
    )
    return dg.AssetCheckResult(
        passed=report.passed,
        metadata={
            "reason": report.reason,
            "images": report.images,
            "pytorch_map50_95": report.pytorch_map50_95,
            "onnx_map50_95": report.onnx_map50_95,
            "pytorch_boxes": report.pytorch_boxes,
            "onnx_boxes": report.onnx_boxes,
            "matched_fraction": report.matched_fraction,
            "mean_matched_iou": report.mean_matched_iou,
        },
    )


@dg.asset_check(
    asset="coreml_model",
    description="The zipped package loads as a CoreML spec; input size and class labels match.",
)
def coreml_spec_matches(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    from ultralytics import YOLO

    exported = upstream_metadata(context, "coreml_model")
    model = upstream_metadata(context, "trained_model")
    names = list(YOLO(model["weights_path"]).names.values())
    inspection = inspect_coreml(Path(exported["path"]), int(exported["imgsz"]), names)
    return dg.AssetCheckResult(
        passed=inspection.passed,
        metadata={
            "problems": dg.MetadataValue.json(inspection.problems),
            "input_shape": json.dumps(inspection.input_shape),
            "class_labels": inspection.class_labels,
            "runtime": COREML_RUNTIME_NOTE,
        },
    )
