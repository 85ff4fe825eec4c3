"""training_dataset: a dataset version (split lists + data.yaml) pointing into the store."""

from itertools import islice

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.config import checked, config_of
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.dataset.augment import AugmentedSet
from azaion_pipeline.lib.dataset.catalogue import Catalogue
from azaion_pipeline.lib.dataset.versions import DatasetVersion, build_version, version_label
from azaion_pipeline.lib.files import write_atomic
from azaion_pipeline.lib.layout import IMAGES, LABELS, SPLITS
from azaion_pipeline.lib.plots import png_markdown
from azaion_pipeline.lib.preview import preview_grid_png


class TrainingDatasetConfig(dg.Config):
    """The preview size (split shares belong to raw_annotations: splits are given at ingest)."""

    preview_images: int = Field(
        default=9, ge=0, le=36, description="Training images in the preview grid."
    )


def dataset_version_metadata(record: DatasetVersion) -> dict:
    """What the UI shows for a DatasetVersion."""
    metadata = {
        "data_yaml": dg.MetadataValue.path(str(record.data_yaml)),
        "dataset_version": record.version,
        "version_id": record.id,
        "augmented_version": record.augmented_version,
        "dataset_dir": dg.MetadataValue.path(str(record.directory)),
        **{f"{split}_images": record.images[split] for split in SPLITS},
        "reused_existing": record.reused_existing,
    }
    if record.preview:
        metadata["preview"] = dg.MetadataValue.md(
            png_markdown(record.preview.read_bytes(), "training images")
        )
    return metadata


@dg.asset(
    group_name="dataset",
    kinds={"python", "filesystem"},
    config_schema=checked(TrainingDatasetConfig),
    description=(
        "datasets/azaion-{date}-{id}: train.txt/valid.txt/test.txt + data.yaml (nc 80) over "
        "the augmented store, a constant handful of files per version. The id hashes the "
        "three lists; an unchanged dataset reuses its version. valid/test hold originals."
    ),
)
def training_dataset(
    context: dg.AssetExecutionContext,
    storage: AzaionStorage,
    augmented_dataset: AugmentedSet,
) -> dg.Output[DatasetVersion]:
    config = config_of(context, TrainingDatasetConfig)
    layout = storage.layout()
    classes = storage.classes()
    store = augmented_dataset.output_dir
    with Catalogue(augmented_dataset.catalogue) as catalogue:
        built = build_version(
            catalogue, layout, store, augmented_dataset.settings_key, classes.model_names()
        )
        preview_path = built.directory / "preview.png"
        if not preview_path.exists():  # drawn once per version: a reused one has it
            # Consecutive rows: a few sources, each with its original and variants.
            rows = islice(
                catalogue.split_entries(augmented_dataset.settings_key, "train"),
                config.preview_images,
            )
            samples = [(store / IMAGES / o.image, store / LABELS / o.label) for o in rows]
            preview = preview_grid_png(
                samples, classes.model_names(), {i: classes.color(i) for i in classes.valid_ids()}
            )
            if preview:
                write_atomic(preview_path, preview)
    record = DatasetVersion(
        version=version_label(built.name),
        id=built.id,
        directory=built.directory,
        data_yaml=built.data_yaml,
        augmented_version=augmented_dataset.version,
        catalogue=augmented_dataset.catalogue,
        settings_key=augmented_dataset.settings_key,
        class_names=classes.model_names(),
        images=built.images,
        reused_existing=built.reused,
        preview=preview_path if preview_path.exists() else None,
    )
    return dg.Output(
        record,
        metadata=dataset_version_metadata(record),
        data_version=dg.DataVersion(record.version),
    )
