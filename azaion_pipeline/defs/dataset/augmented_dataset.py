"""augmented_dataset: every valid annotation plus N variants, built incrementally."""

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.config import checked, config_of
from azaion_pipeline.defs.dataset.progress import progress_logger
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.annotations import AnnotationSet
from azaion_pipeline.lib.augment import (
    MAX_VARIANTS,
    AugmentedSet,
    AugmentSettings,
    augment_dataset,
)
from azaion_pipeline.lib.hashing import sha256_text
from azaion_pipeline.lib.manifest import read_manifest, write_manifest


class AugmentedDatasetConfig(dg.Config):
    variants: int = Field(
        default=MAX_VARIANTS, ge=0, le=MAX_VARIANTS, description="Variants per annotation."
    )
    min_box_size: float = Field(
        default=0.01, ge=0, lt=1, description="Drop boxes narrower/lower than this (fraction)."
    )
    min_visibility: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Drop boxes keeping less of their area after clipping.",
    )
    jpeg_quality: int = Field(default=95, ge=50, le=100, description="JPEG quality of variants.")
    workers: int = Field(default=0, ge=0, description="Augmentation processes; 0 = every core.")


def augmented_set_metadata(record: AugmentedSet) -> dict:
    """What the UI shows for an AugmentedSet."""
    return {
        "version": record.version,
        "annotations_version": record.annotations_version,
        "manifest_path": dg.MetadataValue.path(str(record.manifest)),
        "images": record.images,
        "sources": record.sources,
        "augmented_now": record.augmented_now,
        "skipped_unchanged": record.skipped_unchanged,
        "removed": record.removed,
        "failed": len(record.failures),
        "failures": dg.MetadataValue.json(record.failures),
        "output_dir": dg.MetadataValue.path(str(record.output_dir)),
        "settings_key": record.settings_key,
    }


@dg.asset(
    group_name="dataset",
    kinds={"python", "filesystem"},
    config_schema=checked(AugmentedDatasetConfig),
    description=(
        "Each valid annotation as its original (hard-linked) plus N variants with Azaion's "
        "transforms, under data-processed/aug-{settings key}. Incremental and deterministic."
    ),
)
def augmented_dataset(
    context: dg.AssetExecutionContext,
    storage: AzaionStorage,
    raw_annotations: AnnotationSet,
) -> dg.Output[AugmentedSet]:
    config = config_of(context, AugmentedDatasetConfig)
    layout = storage.layout()
    annotations = read_manifest(raw_annotations.manifest)["annotations"]
    settings = AugmentSettings(
        variants=config.variants,
        min_box_size=config.min_box_size,
        min_visibility=config.min_visibility,
        jpeg_quality=config.jpeg_quality,
    )
    result = augment_dataset(
        annotations,
        layout.processed,
        settings,
        workers=config.workers,
        on_progress=progress_logger(context, "augmented"),
    )
    for name, error in sorted(result.failures.items()):
        context.log.warning(f"could not augment {name}: {error}")
    manifest = write_manifest(
        layout.manifests,
        "augmented_dataset",
        {
            "settings_key": settings.key,
            "output_dir": str(result.output_dir),
            "entries": result.entries,
        },
    )
    record = AugmentedSet(
        version=sha256_text(
            [settings.key, *(f"{e['image']}:{e['source_hash']}" for e in result.entries)]
        ),
        annotations_version=raw_annotations.version,
        settings_key=settings.key,
        output_dir=result.output_dir,
        manifest=manifest,
        images=len(result.entries),
        sources=len({e["source"] for e in result.entries}),
        augmented_now=result.augmented,
        skipped_unchanged=result.skipped,
        removed=result.removed,
        failures=result.failures,
    )
    return dg.Output(
        record, metadata=augmented_set_metadata(record), data_version=dg.DataVersion(record.version)
    )
