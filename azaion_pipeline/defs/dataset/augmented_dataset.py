"""augmented_dataset: every valid annotation plus N variants, in the content-addressed store."""

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.config import checked, config_of
from azaion_pipeline.defs.dataset.progress import progress_logger
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.dataset.augment import (
    AugmentedSet,
    AugmentSettings,
    augment_pending,
)
from azaion_pipeline.lib.dataset.catalogue import Catalogue
from azaion_pipeline.lib.dataset.ingest import AnnotationSet
from azaion_pipeline.lib.dataset.versions import version_id


class AugmentedDatasetConfig(AugmentSettings, dg.Config):
    """The augmentation settings (defaults and bounds from ``AugmentSettings``) plus how to run."""

    workers: int = Field(default=0, ge=0, description="Augmentation processes; 0 = every core.")

    def settings(self) -> AugmentSettings:
        return AugmentSettings(**self.model_dump(include=set(AugmentSettings.model_fields)))


def augmented_set_metadata(record: AugmentedSet) -> dict:
    """What the UI shows for an AugmentedSet."""
    return {
        "version": record.version,
        "annotations_version": record.annotations_version,
        "images": record.images,
        "augmented_now": record.augmented_now,
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
        "transforms, in data-processed/aug-{settings key}, named by content hash. Only "
        "annotations without current outputs are augmented; the catalogue records each file."
    ),
)
def augmented_dataset(
    context: dg.AssetExecutionContext,
    storage: AzaionStorage,
    raw_annotations: AnnotationSet,
) -> dg.Output[AugmentedSet]:
    config = config_of(context, AugmentedDatasetConfig)
    settings = config.settings()
    with Catalogue(raw_annotations.catalogue) as catalogue:
        report = augment_pending(
            catalogue,
            storage.layout().processed,
            settings,
            workers=config.workers,
            on_progress=progress_logger(context, "augmented"),
        )
        version, counts = version_id(catalogue, settings.key)
    for name, error in sorted(report.failures.items()):
        context.log.warning(f"could not augment {name}: {error}")
    record = AugmentedSet(
        version=version,
        annotations_version=raw_annotations.version,
        catalogue=raw_annotations.catalogue,
        settings_key=settings.key,
        output_dir=report.output_dir,
        images=sum(counts.values()),
        augmented_now=report.augmented,
        failures=report.failures,
    )
    return dg.Output(
        record, metadata=augmented_set_metadata(record), data_version=dg.DataVersion(version)
    )
