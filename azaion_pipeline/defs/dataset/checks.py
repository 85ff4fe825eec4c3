"""Checks on training_dataset, incremental: each reads what arrived since it last passed."""

import dagster as dg

from azaion_pipeline.defs.dataset.training_dataset import training_dataset as dataset_asset
from azaion_pipeline.lib.dataset import checks
from azaion_pipeline.lib.dataset.catalogue import NEAR_DISTANCE, Catalogue
from azaion_pipeline.lib.dataset.near_duplicates import DEFAULT_MAX_DISTANCE
from azaion_pipeline.lib.dataset.versions import DatasetVersion
from azaion_pipeline.lib.layout import SPLITS

# Each check takes the checked asset's record as a parameter named after the asset.


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
    asset=dataset_asset,
    blocking=True,
    description=(
        "Zero near-duplicate pairs (pHash) with one image in train and one in valid/test: "
        "test scores are not flattered by near-twins of training images."
    ),
)
def no_near_twins_across_splits(training_dataset: DatasetVersion) -> dg.AssetCheckResult:
    with Catalogue(training_dataset.catalogue) as catalogue:
        distance = int(catalogue.get_meta(NEAR_DISTANCE, str(DEFAULT_MAX_DISTANCE)))
        outcome = checks.no_near_twins_across_splits(catalogue, distance)
    return _result(outcome, "cross_split_pairs")


@dg.asset_check(
    asset=dataset_asset,
    blocking=True,
    description="train, valid and test all hold images whenever the dataset holds any.",
)
def every_split_non_empty(training_dataset: DatasetVersion) -> dg.AssetCheckResult:
    counts = {split: training_dataset.images[split] for split in SPLITS}
    empty = [split for split, count in counts.items() if count == 0]
    passed = not empty or sum(counts.values()) == 0
    return dg.AssetCheckResult(
        passed=passed,
        metadata={**counts, "empty_splits": ", ".join(empty) or "none"},
        description=None if passed else f"empty splits {empty}: add annotations",
    )


@dg.asset_check(
    asset=dataset_asset,
    description="Every new label line has a class id < 80 and coordinates in [0, 1].",
)
def labels_in_range(training_dataset: DatasetVersion) -> dg.AssetCheckResult:
    with Catalogue(training_dataset.catalogue) as catalogue:
        outcome = checks.labels_in_range(catalogue)
    return _result(outcome, "bad_labels")
