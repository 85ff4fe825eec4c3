"""raw_annotations: every image/label pair validated; bad ones quarantined with a reason."""

from collections import Counter

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.config import checked, config_of
from azaion_pipeline.defs.dataset.progress import progress_logger
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.annotations import (
    DEFAULT_MAX_IMAGE_PIXELS,
    AnnotationSet,
    ValidationCache,
    collect_annotations,
)
from azaion_pipeline.lib.histogram import class_histogram_markdown
from azaion_pipeline.lib.manifest import write_manifest
from azaion_pipeline.lib.quarantine import quarantine


class RawAnnotationsConfig(dg.Config):
    include_seed: bool = Field(
        default=False,
        description="Also take operator annotations from data-seed/ (not yet validated).",
    )
    max_image_pixels: int = Field(
        default=DEFAULT_MAX_IMAGE_PIXELS, gt=0, description="Larger images are quarantined."
    )
    workers: int = Field(default=0, ge=0, description="Validation processes; 0 = every core.")


def annotation_set_metadata(record: AnnotationSet, names: dict[int, str]) -> dict:
    """What the UI shows for an AnnotationSet."""
    return {
        "version": record.version,
        "manifest_path": dg.MetadataValue.path(str(record.manifest)),
        "valid": record.valid,
        "quarantined": record.quarantined,
        "duplicates": record.duplicates,
        "quarantined_by_reason": dg.MetadataValue.json(record.quarantined_by_reason),
        "quarantine_failures": record.quarantine_failures,
        "reasons_path": dg.MetadataValue.path(str(record.reasons_file)),
        "boxes": sum(record.boxes_per_class.values()),
        "validated_now": record.validated_now,
        "class_histogram": dg.MetadataValue.md(
            class_histogram_markdown(record.boxes_per_class, names, "boxes per class")
        ),
    }


@dg.asset(
    group_name="dataset",
    kinds={"python", "filesystem"},
    config_schema=checked(RawAnnotationsConfig),
    description=(
        "Every image/label pair under data/ (and data-seed/ when configured), validated. "
        "Failing pairs move to data-corrupted/ with a line in reasons.jsonl."
    ),
)
def raw_annotations(
    context: dg.AssetExecutionContext, storage: AzaionStorage
) -> dg.Output[AnnotationSet]:
    config = config_of(context, RawAnnotationsConfig)
    layout = storage.layout()
    catalog = storage.classes()
    sources = [(layout.data, "data")]
    if config.include_seed:
        sources.append((layout.data_seed, "data-seed"))
    cache = ValidationCache(
        layout.manifests / "validation-cache.json", catalog.valid_ids(), config.max_image_pixels
    )
    collection = collect_annotations(
        sources,
        catalog.valid_ids(),
        max_pixels=config.max_image_pixels,
        workers=config.workers,
        on_progress=progress_logger(context, "validated"),
        cache=cache,
    )
    cache.save(collection.valid)
    outcome = quarantine(layout.corrupted, collection.rejected)
    for failure in outcome.failed:
        context.log.warning(f"could not quarantine {failure}")

    manifest = write_manifest(
        layout.manifests,
        "raw_annotations",
        {"version": collection.version, "annotations": [a.to_json() for a in collection.valid]},
    )
    by_reason = Counter(r.reason.split(":")[0] for r in collection.rejected)
    record = AnnotationSet(
        version=collection.version,
        manifest=manifest,
        valid=len(collection.valid),
        quarantined=len(collection.rejected),
        duplicates=collection.duplicates,
        quarantined_by_reason=dict(sorted(by_reason.items())),
        quarantine_failures=len(outcome.failed),
        reasons_file=layout.corrupted / "reasons.jsonl",
        boxes_per_class=dict(sorted(collection.class_counts().items())),
        validated_now=len(collection.valid) + len(collection.rejected) - cache.hits,
    )
    return dg.Output(
        record,
        metadata=annotation_set_metadata(record, catalog.names()),
        data_version=dg.DataVersion(record.version),
    )
