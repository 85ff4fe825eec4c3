"""model_evaluation: the ONNX export scored on the test split beside the champion's export;
promotion_gate: the blocking check that decides whether it may be published.

The gate needs the shipped artifact, so it sits after the export: trained_model → onnx_model
→ model_evaluation (gate) → published_model. Exports are always produced; a refused model is
never published and never becomes the champion.
"""

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.config import checked, config_of
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.defs.store import PipelineStore
from azaion_pipeline.lib.evaluation.bootstrap import OVERALL
from azaion_pipeline.lib.evaluation.gate import judge
from azaion_pipeline.lib.evaluation.promotion import (
    EvaluationRun,
    ModelEvaluation,
    evaluate_candidate,
    incumbent_of,
)
from azaion_pipeline.lib.evaluation.report import slices_markdown, thresholds_markdown
from azaion_pipeline.lib.export import ExportedModel
from azaion_pipeline.lib.hashing import sha256_text
from azaion_pipeline.lib.plots import png_markdown


class EvaluationConfig(dg.Config):
    batch: int = Field(
        default=8, ge=1, le=64, description="Images per onnxruntime call (capped at max_batch)."
    )
    resamples: int = Field(
        default=1000, ge=1000, le=100_000, description="Paired bootstrap resamples of test images."
    )
    confidence: float = Field(
        default=0.95, ge=0.5, lt=1.0, description="Coverage of the ΔAP50-95 intervals."
    )
    seed: int = Field(default=0, ge=0, description="Bootstrap seed: same inputs, same intervals.")
    flip_images: int = Field(
        default=12, ge=0, le=48, description="Flipped test images shown with both models' boxes."
    )


class GateConfig(dg.Config):
    """Gate v2: when may a challenger replace the champion."""

    tolerance: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="The ΔAP50-95 interval's lower bound may reach down to −tolerance.",
    )
    mode_delta: float = Field(
        default=0.02, ge=0.0, le=1.0, description="Largest AP50-95 loss allowed in a weather mode."
    )
    class_delta: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Largest AP50-95 loss allowed in a class with ≥ class_min_boxes test boxes.",
    )
    class_min_boxes: int = Field(
        default=50, ge=1, description="Classes with fewer test boxes are too noisy to judge alone."
    )
    floor: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Minimum AP50-95, with or without a champion."
    )


def model_evaluation_metadata(run: EvaluationRun) -> dict:
    """What the UI shows for a ModelEvaluation: scores, slices, thresholds, plots, flips."""
    record = run.record
    metadata = {
        "model_version": record.model_version,
        "dataset_version": record.dataset_version,
        "onnx_sha256": record.onnx_sha256,
        "test_images": record.candidate.images,
        "ap50": record.candidate.overall.ap50,
        "ap50_95": record.candidate.overall.ap50_95,
        "champion_model_version": record.champion_model_version or "",
        "slices": dg.MetadataValue.md(
            slices_markdown(
                record.candidate,
                record.champion,
                record.comparison.intervals if record.comparison else None,
            )
        ),
        "thresholds": dg.MetadataValue.md(thresholds_markdown(record.candidate)),
        "pr_curves": dg.MetadataValue.md(png_markdown(run.pr_curves_png, "PR curves")),
        "confusion_matrix": dg.MetadataValue.md(png_markdown(run.confusion_png, "confusion")),
    }
    if record.champion and record.comparison:
        overall = record.comparison.intervals[OVERALL]
        metadata |= {
            "champion_ap50_95": record.champion.overall.ap50_95,
            "delta_ap50_95": overall.delta,
            "delta_low": overall.low,
            "delta_high": overall.high,
            "newly_missed": record.comparison.newly_missed,
            "new_false_positives": record.comparison.new_false_positives,
        }
    if run.flip_grid_png:
        metadata["flips"] = dg.MetadataValue.md(
            "white: truth · blue: champion · orange: candidate\n\n"
            + png_markdown(run.flip_grid_png, "flipped test images")
        )
    return metadata


@dg.asset(
    group_name="evaluation",
    kinds={"onnx", "python"},
    config_schema=checked(EvaluationConfig),
    description=(
        "The ONNX export through onnxruntime on the test split: COCO AP overall, per class, "
        "weather mode and size bucket, per-class thresholds; against the champion's export "
        "on the same images, a paired bootstrap interval on ΔAP50-95 and a flip report."
    ),
)
def model_evaluation(
    context: dg.AssetExecutionContext,
    storage: AzaionStorage,
    pipeline_store: PipelineStore,
    onnx_model: ExportedModel,
) -> dg.Output[ModelEvaluation]:
    config = config_of(context, EvaluationConfig)
    champion = pipeline_store.champion(storage.layout())
    incumbent = (
        incumbent_of(
            champion,
            storage.layout().models / "exports",
            onnx_model.imgsz,
            onnx_model,  # an ExportedModel carries the ExportSettings it was made with
        )
        if champion
        else None
    )
    try:
        run = evaluate_candidate(
            onnx_model.file.path,
            onnx_model.model_version,
            onnx_model.source.data_yaml.parent,
            onnx_model.dataset_version,
            incumbent,
            batch=min(config.batch, onnx_model.max_batch),
            resamples=config.resamples,
            confidence=config.confidence,
            seed=config.seed,
            flip_images=config.flip_images,
        )
    except ValueError as exc:  # an empty or unreadable test split
        raise dg.Failure(description=str(exc)) from exc
    record = run.record
    version = sha256_text(
        [record.onnx_sha256, record.champion_onnx_sha256 or "", record.dataset_version,
         config.model_dump_json()]
    )  # fmt: skip
    return dg.Output(
        record, metadata=model_evaluation_metadata(run), data_version=dg.DataVersion(version[:16])
    )


@dg.asset_check(
    asset=model_evaluation,
    blocking=True,
    config_schema=checked(GateConfig),
    description=(
        "Gate v2: the ΔAP50-95 interval's lower bound ≥ −tolerance, no weather mode worse by "
        "more than mode_delta, no class with ≥ class_min_boxes test boxes worse by more than "
        "class_delta, AP50-95 ≥ floor. Failing stops publishing; metadata names what failed."
    ),
)
def promotion_gate(
    context: dg.AssetCheckExecutionContext, model_evaluation: ModelEvaluation
) -> dg.AssetCheckResult:
    config = config_of(context, GateConfig)
    verdict = judge(
        model_evaluation.candidate,
        model_evaluation.champion,
        model_evaluation.comparison,
        **config.model_dump(),
    )
    metadata = {
        "reason": verdict.reason,
        "failed": dg.MetadataValue.json(verdict.failed),
        "candidate_model_version": model_evaluation.model_version,
        "candidate_ap50_95": model_evaluation.candidate.overall.ap50_95,
        **config.model_dump(),
    }
    if model_evaluation.champion and model_evaluation.comparison:
        overall = model_evaluation.comparison.intervals[OVERALL]
        metadata |= {
            "champion_model_version": model_evaluation.champion_model_version or "",
            "champion_ap50_95": model_evaluation.champion.overall.ap50_95,
            "delta_low": overall.low,
            "delta_high": overall.high,
        }
    return dg.AssetCheckResult(passed=verdict.passed, metadata=metadata)
