"""raw_annotations: the catalogue brought up to date with data/ by delta; bad pairs quarantined."""

from collections import Counter
from datetime import timedelta

import dagster as dg
from pydantic import Field, model_validator

from azaion_pipeline.defs.config import checked, config_of
from azaion_pipeline.defs.dataset.progress import progress_logger
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.dataset.annotations import (
    DEFAULT_MAX_BOXES,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_LABEL_BYTES,
    ValidationRules,
)
from azaion_pipeline.lib.dataset.catalogue import Catalogue
from azaion_pipeline.lib.dataset.ingest import DEFAULT_RESCAN, AnnotationSet, ingest
from azaion_pipeline.lib.dataset.near_duplicates import DEFAULT_MAX_DISTANCE
from azaion_pipeline.lib.dataset.split import SplitShares
from azaion_pipeline.lib.histogram import class_histogram_markdown


class RawAnnotationsConfig(dg.Config):
    """Validation limits, the split shares of new groups (test takes the rest) and the
    near-duplicate distance."""

    include_seed: bool = Field(
        default=False,
        description="Also take operator annotations from data-seed/ (not yet validated).",
    )
    max_image_pixels: int = Field(
        default=DEFAULT_MAX_IMAGE_PIXELS, gt=0, description="Larger images are quarantined."
    )
    max_label_bytes: int = Field(
        default=DEFAULT_MAX_LABEL_BYTES, ge=1, description="Larger label files are quarantined."
    )
    max_boxes: int = Field(
        default=DEFAULT_MAX_BOXES, ge=1, description="Labels with more boxes are quarantined."
    )
    train_percent: int = Field(
        default=SplitShares.train, gt=0, lt=100, description="Share of new groups in train."
    )
    valid_percent: int = Field(
        default=SplitShares.valid, gt=0, lt=100, description="Share of new groups in valid."
    )
    near_duplicate_distance: int = Field(
        default=DEFAULT_MAX_DISTANCE,
        ge=0,
        le=16,
        description="pHash bits within which two images are near-twins and share a split.",
    )
    workers: int = Field(default=0, ge=0, description="Validation threads; 0 = every core.")
    rescan_hours: float = Field(
        default=DEFAULT_RESCAN.total_seconds() / 3600,
        ge=0,
        description=(
            "A root the stream feeds is read from its sealed batches; its folders are listed "
            "again (catching edits made beside the stream) when the last listing is this "
            "old. 0 = list on every run."
        ),
    )

    @model_validator(mode="after")
    def _test_share_left(self):
        if self.train_percent + self.valid_percent >= 100:
            raise ValueError(
                f"train_percent + valid_percent must be < 100 so test keeps a share, got "
                f"{self.train_percent} + {self.valid_percent}"
            )
        return self


def annotation_set_metadata(record: AnnotationSet, names: dict[int, str]) -> dict:
    """What the UI shows for an AnnotationSet."""
    return {
        "version": record.version,
        "catalogue": dg.MetadataValue.path(str(record.catalogue)),
        "valid": record.valid,
        "accepted_now": record.accepted_now,
        "updated_now": record.updated_now,
        "removed_now": record.removed_now,
        "validated_now": record.validated_now,
        "listed_folders": record.listed,
        "quarantined": record.quarantined,
        "duplicates": record.duplicates,
        "quarantined_by_reason": dg.MetadataValue.json(record.quarantined_by_reason),
        "quarantine_failures": record.quarantine_failures,
        "reasons_path": dg.MetadataValue.path(str(record.reasons_file)),
        "excluded_near_twins": record.excluded,
        "excluded_examples": dg.MetadataValue.json(record.excluded_examples),
        "boxes": sum(record.boxes_per_class.values()),
        "class_histogram": dg.MetadataValue.md(
            class_histogram_markdown(record.boxes_per_class, names, "boxes per class")
        ),
    }


@dg.asset(
    group_name="dataset",
    kinds={"python", "sqlite"},
    config_schema=checked(RawAnnotationsConfig),
    description=(
        "The annotation catalogue: every pair under data/ (and data-seed/ when configured), "
        "validated once, updated by delta; new pairs get their split for good. Failing "
        "pairs move to data-corrupted/ with a line in reasons.jsonl."
    ),
)
def raw_annotations(
    context: dg.AssetExecutionContext, storage: AzaionStorage
) -> dg.Output[AnnotationSet]:
    config = config_of(context, RawAnnotationsConfig)
    layout = storage.layout()
    classes = storage.classes()
    rules = ValidationRules(
        classes.valid_ids(), config.max_image_pixels, config.max_label_bytes, config.max_boxes
    )
    with Catalogue.of(layout) as catalogue:
        report = ingest(
            layout,
            catalogue,
            rules,
            include_seed=config.include_seed,
            shares=SplitShares(config.train_percent, config.valid_percent),
            max_distance=config.near_duplicate_distance,
            workers=config.workers,
            on_progress=progress_logger(context, "validated"),
            rescan=timedelta(hours=config.rescan_hours),
        )
        excluded = catalogue.excluded()
        record = AnnotationSet(
            version=catalogue.content_version(),
            catalogue=catalogue.path,
            valid=report.total,
            accepted_now=len(report.accepted),
            updated_now=len(report.updated),
            removed_now=len(report.removed),
            validated_now=report.validated_now,
            listed=report.listed,
            quarantined=len(report.rejected),
            duplicates=report.duplicates,
            quarantined_by_reason=dict(
                sorted(Counter(r.reason.split(":")[0] for r in report.rejected).items())
            ),
            quarantine_failures=len(report.quarantine_failures),
            reasons_file=layout.corrupted / "reasons.jsonl",
            boxes_per_class=dict(sorted(catalogue.class_counts().items())),
            excluded=len(excluded),
            excluded_examples=dict(list(excluded.items())[:10]),
            near_duplicate_distance=config.near_duplicate_distance,
        )
    for failure in report.quarantine_failures:
        context.log.warning(f"could not quarantine {failure}")
    for name, why in report.splits.excluded.items():
        context.log.warning(f"{name} left out of training: {why}")
    return dg.Output(
        record,
        metadata=annotation_set_metadata(record, classes.names()),
        data_version=dg.DataVersion(record.version),
    )
