"""training_dataset: the YOLO dataset (train/valid/test + data.yaml), laid out by hard links."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.lineage import upstream_metadata
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.hashing import sha256_text
from azaion_pipeline.lib.histogram import class_histogram_markdown
from azaion_pipeline.lib.layout import SPLITS
from azaion_pipeline.lib.manifest import read_manifest
from azaion_pipeline.lib.plots import png_markdown
from azaion_pipeline.lib.preview import preview_grid_png
from azaion_pipeline.lib.split import SplitShares, assign_splits, build_dataset, split_label_stats


class TrainingDatasetConfig(dg.Config):
    train_percent: int = Field(default=70, ge=0, le=100, description="Share of sources in train.")
    valid_percent: int = Field(default=20, ge=0, le=100, description="Share of sources in valid.")
    preview_images: int = Field(
        default=9, ge=0, le=36, description="Training images in the preview grid."
    )


@dg.asset(
    group_name="dataset",
    kinds={"python", "filesystem"},
    deps=["augmented_dataset"],
    description=(
        "datasets/azaion-{version}/{train,valid,test}/{images,labels} + data.yaml (nc 80). "
        "Split by a stable hash of the source name; valid/test hold originals only."
    ),
)
def training_dataset(
    context: dg.AssetExecutionContext, config: TrainingDatasetConfig, storage: AzaionStorage
) -> dg.MaterializeResult:
    layout = storage.layout()
    catalog = storage.classes()
    upstream = upstream_metadata(context, "augmented_dataset")
    augmented_manifest = Path(upstream["manifest_path"])
    shares = SplitShares(train=config.train_percent, valid=config.valid_percent)
    by_split = assign_splits(read_manifest(augmented_manifest)["entries"], shares)

    # The augmented manifest's name is its content hash, so this names the exact content.
    content = sha256_text([augmented_manifest.name, f"{shares.train}/{shares.valid}"])[:8]
    existing = sorted(layout.datasets.glob(f"azaion-*-{content}"))
    version = (
        existing[0].name.removeprefix("azaion-")
        if existing
        else f"{datetime.now(UTC):%Y-%m-%d}-{content}"
    )
    layout.datasets.mkdir(parents=True, exist_ok=True)
    built = build_dataset(by_split, layout.dataset_dir(version), catalog.model_names())
    if built.copied_files:
        context.log.warning(f"{built.copied_files} files copied: not on the same filesystem")

    names = catalog.model_names()
    per_split = split_label_stats(built.directory)
    # Evenly spaced over the sorted rows: several sources, originals and variants.
    train_rows = by_split["train"]
    step = max(1, len(train_rows) // max(config.preview_images, 1))
    samples = [(Path(r["image"]), Path(r["label"])) for r in train_rows[::step]]
    preview = preview_grid_png(
        samples[: config.preview_images], names, {i: catalog.color(i) for i in catalog.valid_ids()}
    )
    metadata = {
        "data_yaml": dg.MetadataValue.path(str(built.data_yaml)),
        "dataset_version": version,
        "dataset_dir": dg.MetadataValue.path(str(built.directory)),
        **{f"{split}_images": built.images[split] for split in SPLITS},
        **{f"{split}_boxes": sum(per_split[split].values()) for split in SPLITS},
        "augmented_manifest": dg.MetadataValue.path(str(augmented_manifest)),
        "reused_existing": built.reused,
        "copied_files": built.copied_files,
    }
    metadata["class_histogram"] = dg.MetadataValue.md(
        "\n\n".join(
            class_histogram_markdown(per_split[split], names, f"{split}: boxes per class")
            for split in SPLITS
        )
    )
    if preview:
        metadata["preview"] = dg.MetadataValue.md(png_markdown(preview, "training images"))
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(version))
