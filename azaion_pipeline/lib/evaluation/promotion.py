"""Evaluate a candidate export against the champion's export on the same test images.

This is what the evaluation asset runs; the gate then judges the record it returns, and
publishing ships the candidate's thresholds and summary from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from azaion_pipeline.lib.champion import Champion
from azaion_pipeline.lib.evaluation.comparison import Comparison, compare, flip_grid_png
from azaion_pipeline.lib.evaluation.evaluator import evaluate_export, load_test_split
from azaion_pipeline.lib.evaluation.report import confusion_png, pr_curves_png
from azaion_pipeline.lib.evaluation.scoring import EvaluationSummary
from azaion_pipeline.lib.export import ExportSettings, export_onnx
from azaion_pipeline.lib.hashing import sha256_file
from azaion_pipeline.lib.records import Record


class ModelEvaluation(Record):
    """The candidate's export scored on a dataset version's test split, beside the champion's."""

    model_version: str
    dataset_version: str
    onnx_path: Path
    onnx_sha256: str
    candidate: EvaluationSummary
    champion_model_version: str | None = None
    champion_onnx_sha256: str | None = None
    champion: EvaluationSummary | None = None
    comparison: Comparison | None = None


@dataclass(frozen=True)
class Incumbent:
    """The champion as the gate scores it: its model version and its ONNX export."""

    model_version: str
    onnx_path: Path


def incumbent_of(
    champion: Champion, exports_root: Path, imgsz: int, settings: ExportSettings
) -> Incumbent:
    """The champion's published ONNX; a champion promoted before exports were kept with it is
    exported once, with the candidate's export settings."""
    if champion.onnx and champion.onnx.is_file():
        return Incumbent(champion.model_version, champion.onnx)
    exported = export_onnx(
        champion.weights, imgsz, exports_root, settings,
        extra_metadata={"model_version": champion.model_version},
    )  # fmt: skip
    return Incumbent(champion.model_version, exported.path)


@dataclass(frozen=True)
class EvaluationRun:
    record: ModelEvaluation
    pr_curves_png: bytes
    confusion_png: bytes
    flip_grid_png: bytes | None


def evaluate_candidate(
    onnx_path: Path,
    model_version: str,
    dataset_dir: Path,
    dataset_version: str,
    champion: Incumbent | None,
    *,
    batch: int,
    resamples: int,
    confidence: float,
    seed: int,
    flip_images: int,
) -> EvaluationRun:
    candidate = evaluate_export(onnx_path, dataset_dir, batch)
    fields = {}
    flips = None
    if champion is not None:
        incumbent = evaluate_export(champion.onnx_path, dataset_dir, batch)
        comparison = compare(incumbent, candidate, resamples, confidence, seed)
        fields = {
            "champion_model_version": champion.model_version,
            "champion_onnx_sha256": sha256_file(champion.onnx_path),
            "champion": incumbent.summary,
            "comparison": comparison,
        }
        split = load_test_split(dataset_dir)
        flips = flip_grid_png(comparison, split, incumbent, candidate, flip_images)
    record = ModelEvaluation(
        model_version=model_version,
        dataset_version=dataset_version,
        onnx_path=Path(onnx_path),
        onnx_sha256=sha256_file(onnx_path),
        candidate=candidate.summary,
        **fields,
    )
    return EvaluationRun(record, pr_curves_png(candidate), confusion_png(candidate), flips)
