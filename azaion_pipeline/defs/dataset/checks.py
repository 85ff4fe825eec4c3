"""Checks on training_dataset, incremental: each reads what arrived since it last passed."""

import dagster as dg

from azaion_pipeline.defs.dataset.raw_annotations import NEAR_DISTANCE_META
from azaion_pipeline.defs.lineage import upstream_metadata
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.dataset import checks
from azaion_pipeline.lib.dataset.catalogue import Catalogue
from azaion_pipeline.lib.dataset.near_duplicates import DEFAULT_MAX_DISTANCE
from azaion_pipeline.lib.layout import SPLITS


def _result(outcome: checks.CheckOutcome, what: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=outcome.passed,
        metadata={
            "checked_now": outcome.checked,
            what: outcome.problems,
            "examples": dg.MetadataValue.json(outcome.examples),
        },
    )


@dg.asset_check(
    asset="training_dataset",
    blocking=True,
    description=(
        "Zero near-duplicate pairs (pHash) with one image in train and one in valid/test: "
        "test scores are not flattered by near-twins of training images."
    ),
)
def no_near_twins_across_splits(
    context: dg.AssetCheckExecutionContext, storage: AzaionStorage
) -> dg.AssetCheckResult:
    with Catalogue.of(storage.layout()) as catalogue:
        distance = int(catalogue.get_meta(NEAR_DISTANCE_META, str(DEFAULT_MAX_DISTANCE)))
        outcome = checks.no_near_twins_across_splits(catalogue, distance)
    return _result(outcome, "cross_split_pairs")


@dg.asset_check(
    asset="training_dataset",
    blocking=True,
    description="train, valid and test all hold images whenever the dataset holds any.",
)
def every_split_non_empty(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    metadata = upstream_metadata(context, "training_dataset")
    counts = {split: int(metadata[f"{split}_images"]) for split in SPLITS}
    empty = [split for split, count in counts.items() if count == 0]
    passed = not empty or sum(counts.values()) == 0
    return dg.AssetCheckResult(
        passed=passed,
        metadata={**counts, "empty_splits": ", ".join(empty) or "none"},
        description=None if passed else f"empty splits {empty}: add annotations",
    )


@dg.asset_check(
    asset="training_dataset",
    description="Every new label line has a class id < 80 and coordinates in [0, 1].",
)
def labels_in_range(
    context: dg.AssetCheckExecutionContext, storage: AzaionStorage
) -> dg.AssetCheckResult:
    with Catalogue.of(storage.layout()) as catalogue:
        outcome = checks.labels_in_range(catalogue)
    return _result(outcome, "bad_labels")
