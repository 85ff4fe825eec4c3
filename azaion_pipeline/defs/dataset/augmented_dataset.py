"""augmented_dataset: every valid annotation plus N variants, built incrementally."""

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.dataset.progress import progress_logger
from azaion_pipeline.defs.lineage import upstream_metadata
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.augment import MAX_VARIANTS, AugmentSettings, augment_dataset
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


@dg.asset(
    group_name="dataset",
    kinds={"python", "filesystem"},
    deps=["raw_annotations"],
    description=(
        "Each valid annotation as its original (hard-linked) plus N variants with Azaion's "
        "transforms, under data-processed/aug-{settings key}. Incremental and deterministic."
    ),
)
def augmented_dataset(
    context: dg.AssetExecutionContext, config: AugmentedDatasetConfig, storage: AzaionStorage
) -> dg.MaterializeResult:
    layout = storage.layout()
    upstream = upstream_metadata(context, "raw_annotations")
    annotations = read_manifest(upstream["manifest_path"])["annotations"]
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
    version = sha256_text(
        [settings.key, *(f"{e['image']}:{e['source_hash']}" for e in result.entries)]
    )
    return dg.MaterializeResult(
        metadata={
            "manifest_path": dg.MetadataValue.path(str(manifest)),
            "images": len(result.entries),
            "sources": len({e["source"] for e in result.entries}),
            "augmented_now": result.augmented,
            "skipped_unchanged": result.skipped,
            "removed": result.removed,
            "failed": len(result.failures),
            "failures": dg.MetadataValue.json(result.failures),
            "output_dir": dg.MetadataValue.path(str(result.output_dir)),
            "settings_key": settings.key,
        },
        data_version=dg.DataVersion(version),
    )
