"""augmented_dataset: every valid annotation plus N variants, in the content-addressed store."""

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.dataset.progress import progress_logger
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.dataset.augment import MAX_VARIANTS, AugmentSettings, augment_pending
from azaion_pipeline.lib.dataset.catalogue import Catalogue
from azaion_pipeline.lib.dataset.versions import version_id


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
        "transforms, in data-processed/aug-{settings key}, named by content hash. Only "
        "annotations without current outputs are augmented; the catalogue records each file."
    ),
)
def augmented_dataset(
    context: dg.AssetExecutionContext, config: AugmentedDatasetConfig, storage: AzaionStorage
) -> dg.MaterializeResult:
    layout = storage.layout()
    settings = AugmentSettings(
        variants=config.variants,
        min_box_size=config.min_box_size,
        min_visibility=config.min_visibility,
        jpeg_quality=config.jpeg_quality,
    )
    with Catalogue.of(layout) as catalogue:
        report = augment_pending(
            catalogue,
            layout.processed,
            settings,
            workers=config.workers,
            on_progress=progress_logger(context, "augmented"),
        )
        version, counts = version_id(catalogue, settings.key)
    for name, error in sorted(report.failures.items()):
        context.log.warning(f"could not augment {name}: {error}")
    return dg.MaterializeResult(
        metadata={
            "images": sum(counts.values()),
            "augmented_now": report.augmented,
            "failed": len(report.failures),
            "failures": dg.MetadataValue.json(report.failures),
            "output_dir": dg.MetadataValue.path(str(report.output_dir)),
            "settings_key": settings.key,
        },
        data_version=dg.DataVersion(version),
    )
