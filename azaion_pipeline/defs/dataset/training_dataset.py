"""training_dataset: the YOLO dataset (train/valid/test + data.yaml), laid out by hard links."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import dagster as dg
from pydantic import Field, model_validator

from azaion_pipeline.defs.config import checked, config_of
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.augment import AugmentedSet
from azaion_pipeline.lib.files import write_atomic
from azaion_pipeline.lib.hashing import sha256_text
from azaion_pipeline.lib.histogram import class_histogram_markdown
from azaion_pipeline.lib.layout import SPLITS
from azaion_pipeline.lib.manifest import read_manifest
from azaion_pipeline.lib.plots import png_markdown
from azaion_pipeline.lib.preview import preview_grid_png
from azaion_pipeline.lib.split import (
    DatasetVersion,
    SplitShares,
    assign_splits,
    build_dataset,
    split_label_stats,
)


class TrainingDatasetConfig(dg.Config):
    """Split percentages (test takes the rest) and the preview size."""

    train_percent: int = Field(default=70, gt=0, lt=100, description="Share of sources in train.")
    valid_percent: int = Field(default=20, gt=0, lt=100, description="Share of sources in valid.")
    preview_images: int = Field(
        default=9, ge=0, le=36, description="Training images in the preview grid."
    )

    @model_validator(mode="after")
    def _test_keeps_a_share(self) -> Self:
        if self.train_percent + self.valid_percent >= 100:
            raise ValueError(
                f"train_percent + valid_percent must be < 100 so test keeps a share, got "
                f"{self.train_percent} + {self.valid_percent}"
            )
        return self


def dataset_version_metadata(record: DatasetVersion) -> dict:
    """What the UI shows for a DatasetVersion."""
    metadata = {
        "data_yaml": dg.MetadataValue.path(str(record.data_yaml)),
        "dataset_version": record.version,
        "augmented_version": record.augmented_version,
        "dataset_dir": dg.MetadataValue.path(str(record.directory)),
        **{f"{split}_images": record.images[split] for split in SPLITS},
        **{f"{split}_boxes": record.boxes(split) for split in SPLITS},
        "augmented_manifest": dg.MetadataValue.path(str(record.augmented_manifest)),
        "reused_existing": record.reused_existing,
        "copied_files": record.copied_files,
        "class_histogram": dg.MetadataValue.md(
            "\n\n".join(
                class_histogram_markdown(
                    record.boxes_per_class[split],
                    record.class_names,
                    f"{split}: boxes per class",
                )
                for split in SPLITS
            )
        ),
    }
    if record.preview:
        metadata["preview"] = dg.MetadataValue.md(png_markdown(record.preview, "training images"))
    return metadata


@dg.asset(
    group_name="dataset",
    kinds={"python", "filesystem"},
    config_schema=checked(TrainingDatasetConfig),
    description=(
        "datasets/azaion-{version}/{train,valid,test}/{images,labels} + data.yaml (nc 80). "
        "Split by a stable hash of the source name; valid/test hold originals only."
    ),
)
def training_dataset(
    context: dg.AssetExecutionContext,
    storage: AzaionStorage,
    augmented_dataset: AugmentedSet,
) -> dg.Output[DatasetVersion]:
    config = config_of(context, TrainingDatasetConfig)
    layout = storage.layout()
    catalog = storage.classes()
    augmented_manifest = augmented_dataset.manifest
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
    preview_path = None
    if preview:
        preview_path = layout.manifests / f"preview-{version}.png"
        preview_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(preview_path, preview)
    record = DatasetVersion(
        version=version,
        directory=built.directory,
        data_yaml=built.data_yaml,
        augmented_version=augmented_dataset.version,
        augmented_manifest=augmented_manifest,
        class_names=names,
        images={split: built.images[split] for split in SPLITS},
        boxes_per_class={split: dict(sorted(per_split[split].items())) for split in SPLITS},
        reused_existing=built.reused,
        copied_files=built.copied_files,
        preview=preview_path,
    )
    return dg.Output(
        record, metadata=dataset_version_metadata(record), data_version=dg.DataVersion(version)
    )
