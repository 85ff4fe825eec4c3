"""Dataset versions: a handful of files that point into the content-addressed store.

A version folder ``datasets/azaion-{date}-{id}`` holds::

    data.yaml                          train/val/test -> the three list files, nc 80
    size_buckets.json                  the evaluator's object-size edges (train boxes)
    train.txt valid.txt test.txt       one image per line: ./{split}/images/{file}
    {split}/images -> store images/    symlinks into data-processed/aug-{key}/
    {split}/labels -> store labels/

ultralytics finds a label by replacing the image path's last ``/images/`` with
``/labels/``, so each split resolves labels through its own symlink, and keeps its
``labels.cache`` at ``{split}/labels.cache``: one per version and split, never shared.
That is 15 directory entries per version whatever the size; no link farm.

The version id is a hash of the three lists, kept by the catalogue as running sums while
outputs come and go: an unchanged dataset gets the same id without reading the lists.
"""

from __future__ import annotations

import os
import shutil
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from azaion_pipeline.lib.dataset.catalogue import Catalogue, list_line
from azaion_pipeline.lib.evaluation.slices import record_size_buckets
from azaion_pipeline.lib.hashing import sha256_text
from azaion_pipeline.lib.layout import IMAGES, LABELS, SPLITS, AzaionLayout
from azaion_pipeline.lib.records import Record

DATA_YAML = "data.yaml"
# ultralytics calls the validation split "val"; Azaion's list is valid.txt.
YAML_KEYS = {"train": "train", "valid": "val", "test": "test"}


class DatasetVersion(Record):
    """training_dataset's output: one dataset version, what training reads (data.yaml)."""

    version: str  # as models record it: {date}-{id}
    id: str  # hash of the three split lists
    directory: Path
    data_yaml: Path
    augmented_version: str  # the AugmentedSet this was listed from
    catalogue: Path
    settings_key: str
    class_names: dict[int, str]  # the nc=80 names written into data.yaml
    images: dict[str, int]  # per split
    reused_existing: bool
    preview: Path | None  # a PNG grid of training images with their boxes


@dataclass(frozen=True)
class BuiltVersion:
    id: str
    name: str
    directory: Path
    data_yaml: Path
    images: dict[str, int]
    reused: bool


def version_label(name: str) -> str:
    """The dataset version as models record it (the folder name without ``azaion-``)."""
    return name.removeprefix("azaion-")


def version_id(catalogue: Catalogue, settings_key: str) -> tuple[str, dict[str, int]]:
    """The id of the dataset the catalogue describes now, and each split's image count."""
    sums = catalogue.list_sums(settings_key)
    counts = {split: sums.get(split, ("0", 0))[1] for split in SPLITS}
    parts = [settings_key, *(f"{s}:{sums.get(s, ('0', 0))[0]}:{counts[s]}" for s in SPLITS)]
    return sha256_text(parts)[:16], counts


def data_yaml_text(
    model_names: dict[int, str],
    catalogue: Path | None = None,
    settings_key: str = "",
    manifest: str | None = None,
) -> str:
    """No ``path:``: ultralytics then resolves the lists beside data.yaml, so a version
    folder can move (or be synced to a GPU node) as it is. Where the labels cache writer
    (``labels_cache.prepare_labels_caches``) finds this version's boxes: the ``catalogue`` on
    the host that built it, the synced ``manifest`` file (beside data.yaml) on a node."""
    spec: dict = {yaml_key: f"{split}.txt" for split, yaml_key in YAML_KEYS.items()}
    spec |= {"nc": len(model_names), "names": model_names}
    if catalogue is not None:
        spec |= {"azaion_catalogue": str(catalogue), "azaion_settings_key": settings_key}
    if manifest is not None:
        spec |= {"azaion_manifest": manifest}
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)


def build_version(
    catalogue: Catalogue,
    layout: AzaionLayout,
    store: Path,
    settings_key: str,
    model_names: dict[int, str],
) -> BuiltVersion:
    """The version for the catalogue's current lists: reused when it exists, else written
    in a temporary sibling folder and renamed into place (readers never see half of it)."""
    vid, counts = version_id(catalogue, settings_key)
    known = catalogue.version(vid)
    if known and (layout.datasets / known["name"] / DATA_YAML).exists():
        directory = layout.datasets / known["name"]
        return BuiltVersion(vid, known["name"], directory, directory / DATA_YAML, counts, True)
    now = datetime.now(UTC)
    name = f"azaion-{now:%Y-%m-%d}-{vid[:12]}"
    directory = layout.datasets / name
    partial = directory.with_name(f".{name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)  # our own leftover from a killed build
    partial.mkdir(parents=True)

    def write_list(split: str) -> Iterator[str]:
        """Write ``{split}.txt`` as its rows stream by, yielding each row's label text."""
        with open(partial / f"{split}.txt", "w", encoding="utf-8") as listing:
            for image, label_text in catalogue.list_entries(settings_key, split):
                listing.write(list_line(split, image) + "\n")
                yield label_text

    for split in SPLITS:
        (partial / split).mkdir()
        for sub in (IMAGES, LABELS):
            (partial / split / sub).symlink_to(os.path.relpath(store / sub, directory / split))
        if split == "train":
            # What the evaluator slices test results by, from the same pass over the rows.
            record_size_buckets(partial, write_list(split))
        else:
            deque(write_list(split), maxlen=0)
    (partial / DATA_YAML).write_text(data_yaml_text(model_names, catalogue.path, settings_key))
    if directory.exists():  # a killed run renamed it but did not record it
        shutil.rmtree(directory)
    os.replace(partial, directory)
    with catalogue.transaction():
        catalogue.add_version(
            {"id": vid, "name": name, "settings_key": settings_key, "created_at": now.isoformat()}
            | counts
        )
    return BuiltVersion(vid, name, directory, directory / DATA_YAML, counts, False)


def read_list(version_dir: Path, split: str) -> list[str]:
    """The image file names in one split's list."""
    text = (version_dir / f"{split}.txt").read_text(encoding="utf-8")
    return [line.rsplit("/", 1)[-1] for line in text.splitlines() if line]
