"""training_dataset: a dataset version (split lists + data.yaml) pointing into the store."""

from itertools import islice
from pathlib import Path

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.lineage import upstream_metadata
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.dataset.catalogue import Catalogue
from azaion_pipeline.lib.dataset.retention import version_label
from azaion_pipeline.lib.dataset.versions import build_version
from azaion_pipeline.lib.layout import IMAGES, LABELS, SPLITS
from azaion_pipeline.lib.plots import png_markdown
from azaion_pipeline.lib.preview import preview_grid_png


class TrainingDatasetConfig(dg.Config):
    preview_images: int = Field(
        default=9, ge=0, le=36, description="Training images in the preview grid."
    )


@dg.asset(
    group_name="dataset",
    kinds={"python", "filesystem"},
    deps=["augmented_dataset"],
    description=(
        "datasets/azaion-{date}-{id}: train.txt/valid.txt/test.txt + data.yaml (nc 80) over "
        "the augmented store, a constant handful of files per version. The id hashes the "
        "three lists; an unchanged dataset reuses its version. valid/test hold originals."
    ),
)
def training_dataset(
    context: dg.AssetExecutionContext, config: TrainingDatasetConfig, storage: AzaionStorage
) -> dg.MaterializeResult:
    layout = storage.layout()
    classes = storage.classes()
    augmented = upstream_metadata(context, "augmented_dataset")
    store = Path(augmented["output_dir"])
    with Catalogue.of(layout) as catalogue:
        built = build_version(
            catalogue, layout, store, augmented["settings_key"], classes.model_names()
        )
        # Consecutive rows: a few sources, each with its original and variants.
        rows = islice(catalogue.split_entries(augmented["settings_key"], "train"), 36)
        samples = [(store / IMAGES / o.image, store / LABELS / o.label) for o in rows]
    preview = preview_grid_png(
        samples[: config.preview_images],
        classes.model_names(),
        {i: classes.color(i) for i in classes.valid_ids()},
    )
    metadata = {
        "data_yaml": dg.MetadataValue.path(str(built.data_yaml)),
        "dataset_version": version_label(built.name),
        "version_id": built.id,
        "dataset_dir": dg.MetadataValue.path(str(built.directory)),
        **{f"{split}_images": built.images[split] for split in SPLITS},
        "reused_existing": built.reused,
    }
    if preview:
        metadata["preview"] = dg.MetadataValue.md(png_markdown(preview, "training images"))
    return dg.MaterializeResult(
        metadata=metadata, data_version=dg.DataVersion(version_label(built.name))
    )
