"""Checks on training_dataset, reading the laid-out files back from disk."""

from pathlib import Path

import dagster as dg

from azaion_pipeline.defs.lineage import upstream_metadata
from azaion_pipeline.lib.manifest import read_manifest
from azaion_pipeline.lib.split import labels_out_of_range, sources_in_splits, split_image_counts


def _dataset_dir(context) -> Path:
    return Path(upstream_metadata(context, "training_dataset")["dataset_dir"])


@dg.asset_check(
    asset="training_dataset",
    blocking=True,
    description="No source annotation has images in two splits (no leakage).",
)
def no_source_in_two_splits(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    metadata = upstream_metadata(context, "training_dataset")
    entries = read_manifest(metadata["augmented_manifest"])["entries"]
    image_to_source = {Path(e["image"]).name: e["source"] for e in entries}
    leaks = {
        source: sorted(splits)
        for source, splits in sources_in_splits(
            Path(metadata["dataset_dir"]), image_to_source
        ).items()
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
    asset="training_dataset",
    blocking=True,
    description="train, valid and test all hold images whenever the dataset holds any.",
)
def every_split_non_empty(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    counts = split_image_counts(_dataset_dir(context))
    empty = [split for split, count in counts.items() if count == 0]
    passed = not empty or sum(counts.values()) == 0
    return dg.AssetCheckResult(
        passed=passed,
        metadata={**counts, "empty_splits": ", ".join(empty) or "none"},
        description=None if passed else f"empty splits {empty}: add annotations",
    )


@dg.asset_check(
    asset="training_dataset",
    description="Every label line has a class id < 80 and coordinates in [0, 1].",
)
def labels_in_range(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    problems = labels_out_of_range(_dataset_dir(context))
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"bad_labels": len(problems), "examples": dg.MetadataValue.json(problems[:10])},
    )
