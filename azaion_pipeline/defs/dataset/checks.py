"""Checks on training_dataset, reading the laid-out files of the checked DatasetVersion back."""

from pathlib import Path

import dagster as dg

from azaion_pipeline.defs.dataset.training_dataset import training_dataset as dataset_asset
from azaion_pipeline.lib.manifest import read_manifest
from azaion_pipeline.lib.split import (
    DatasetVersion,
    labels_out_of_range,
    sources_in_splits,
    split_image_counts,
)

# Each check takes the checked asset's record as a parameter named after the asset.


@dg.asset_check(
    asset=dataset_asset,
    blocking=True,
    description="No source annotation has images in two splits (no leakage).",
)
def no_source_in_two_splits(training_dataset: DatasetVersion) -> dg.AssetCheckResult:
    entries = read_manifest(training_dataset.augmented_manifest)["entries"]
    image_to_source = {Path(e["image"]).name: e["source"] for e in entries}
    leaks = {
        source: sorted(splits)
        for source, splits in sources_in_splits(training_dataset.directory, image_to_source).items()
        if len(splits) > 1
    }
    return dg.AssetCheckResult(
        passed=not leaks,
        metadata={
            "leaking_sources": len(leaks),
            "examples": dg.MetadataValue.json(dict(list(leaks.items())[:10])),
        },
    )


@dg.asset_check(
    asset=dataset_asset,
    blocking=True,
    description="train, valid and test all hold images whenever the dataset holds any.",
)
def every_split_non_empty(training_dataset: DatasetVersion) -> dg.AssetCheckResult:
    counts = split_image_counts(training_dataset.directory)
    empty = [split for split, count in counts.items() if count == 0]
    passed = not empty or sum(counts.values()) == 0
    return dg.AssetCheckResult(
        passed=passed,
        metadata={**counts, "empty_splits": ", ".join(empty) or "none"},
        description=None if passed else f"empty splits {empty}: add annotations",
    )


@dg.asset_check(
    asset=dataset_asset,
    description="Every label line has a class id < 80 and coordinates in [0, 1].",
)
def labels_in_range(training_dataset: DatasetVersion) -> dg.AssetCheckResult:
    problems = labels_out_of_range(training_dataset.directory)
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"bad_labels": len(problems), "examples": dg.MetadataValue.json(problems[:10])},
    )
