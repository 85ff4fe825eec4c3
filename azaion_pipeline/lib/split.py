"""Train/valid/test split by a stable hash of the source annotation name, laid out by hard links.

The split of an annotation depends on its name only, so it never changes as data grows
and every variant of one source lands where its source does. valid and test take
originals only: a model is judged on real images.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from azaion_pipeline.lib.annotations import AnnotationError, parse_label
from azaion_pipeline.lib.classes import NUM_MODEL_CLASSES
from azaion_pipeline.lib.files import link_or_copy
from azaion_pipeline.lib.layout import IMAGES, LABELS, SPLITS
from azaion_pipeline.lib.records import Record

DATA_YAML = "data.yaml"
MODEL_CLASS_IDS = frozenset(range(NUM_MODEL_CLASSES))


class DatasetVersion(Record):
    """training_dataset's output: one laid-out YOLO dataset (train/valid/test + data.yaml)."""

    version: str
    directory: Path
    data_yaml: Path
    augmented_version: str  # the AugmentedSet this was split from
    augmented_manifest: Path
    class_names: dict[int, str]  # the nc=80 names written into data.yaml
    images: dict[str, int]  # per split
    boxes_per_class: dict[str, dict[int, int]]  # per split, read back from the label files
    reused_existing: bool
    copied_files: int
    preview: Path | None  # a PNG grid of training images with their boxes

    def boxes(self, split: str) -> int:
        return sum(self.boxes_per_class[split].values())


@dataclass(frozen=True)
class SplitShares:
    train: int = 70
    valid: int = 20

    def __post_init__(self):
        if self.train < 0 or self.valid < 0 or self.train + self.valid > 100:
            raise ValueError(f"split shares must be >= 0 and sum to <= 100: {self}")

    @property
    def test(self) -> int:
        return 100 - self.train - self.valid


def split_of(source: str, shares: SplitShares) -> str:
    """``train``, ``valid`` or ``test`` for a source name, fixed by its hash."""
    bucket = int.from_bytes(hashlib.sha256(source.encode()).digest()[:8], "big") % 100
    if bucket < shares.train:
        return "train"
    return "valid" if bucket < shares.train + shares.valid else "test"


def assign_splits(entries: list[dict], shares: SplitShares) -> dict[str, list[dict]]:
    """Entries (augmented-manifest rows) by split; valid/test keep originals (variant 0) only."""
    by_split: dict[str, list[dict]] = {split: [] for split in SPLITS}
    cache: dict[str, str] = {}
    for entry in entries:
        source = entry["source"]
        split = cache.get(source) or cache.setdefault(source, split_of(source, shares))
        if split == "train" or entry["variant"] == 0:
            by_split[split].append(entry)
    return by_split


def data_yaml_text(dataset_dir: Path, model_names: dict[int, str]) -> str:
    return yaml.safe_dump(
        {
            "path": str(dataset_dir),
            "train": "train/images",
            "val": "valid/images",
            "test": "test/images",
            "nc": len(model_names),
            "names": model_names,
        },
        sort_keys=False,
        allow_unicode=True,
    )


@dataclass
class BuiltDataset:
    directory: Path
    data_yaml: Path
    reused: bool  # an identical dataset was already on disk
    copied_files: int = 0  # files that could not be hard-linked (other filesystem)
    images: dict[str, int] = field(default_factory=dict)


def build_dataset(
    by_split: dict[str, list[dict]], dataset_dir: Path, model_names: dict[int, str]
) -> BuiltDataset:
    """Lay ``by_split`` out under ``dataset_dir`` by hard links, plus data.yaml.

    Built in a temporary sibling folder and renamed into place, so a reader never sees a
    half-built dataset; an existing complete ``dataset_dir`` is reused as it is.
    """
    images = {split: len(rows) for split, rows in by_split.items()}
    if (dataset_dir / DATA_YAML).exists():
        return BuiltDataset(dataset_dir, dataset_dir / DATA_YAML, reused=True, images=images)
    partial = dataset_dir.with_name(f".{dataset_dir.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)  # our own leftover from a killed build
    copied = 0
    for split, rows in by_split.items():
        image_dir, label_dir = partial / split / IMAGES, partial / split / LABELS
        image_dir.mkdir(parents=True)
        label_dir.mkdir(parents=True)
        for row in rows:
            copied += link_or_copy(row["image"], image_dir / Path(row["image"]).name)
            copied += link_or_copy(row["label"], label_dir / Path(row["label"]).name)
    (partial / DATA_YAML).write_text(data_yaml_text(dataset_dir, model_names))
    os.replace(partial, dataset_dir)
    return BuiltDataset(dataset_dir, dataset_dir / DATA_YAML, False, copied, images)


def split_label_stats(dataset_dir: Path) -> dict[str, Counter[int]]:
    """Boxes per class in each split, read back from the laid-out label files."""
    stats = {}
    for split in SPLITS:
        counts: Counter[int] = Counter()
        for label in (dataset_dir / split / LABELS).glob("*.txt"):
            for line in label.read_text().splitlines():
                if line.strip():
                    counts[int(line.split()[0])] += 1
        stats[split] = counts
    return stats


# Checks: read the dataset back from disk rather than trusting what the build reported.


def sources_in_splits(dataset_dir: Path, image_to_source: dict[str, str]) -> dict[str, set[str]]:
    """Source name -> the splits holding any of its images (file names unknown map to themselves)."""
    found: dict[str, set[str]] = {}
    for split in SPLITS:
        for image in (dataset_dir / split / IMAGES).iterdir():
            found.setdefault(image_to_source.get(image.name, image.stem), set()).add(split)
    return found


def split_image_counts(dataset_dir: Path) -> dict[str, int]:
    return {split: sum(1 for _ in (dataset_dir / split / IMAGES).iterdir()) for split in SPLITS}


def labels_out_of_range(dataset_dir: Path) -> list[str]:
    """``split/file: problem`` for every label with a class or coordinate out of range."""
    problems = []
    for split in SPLITS:
        for label in sorted((dataset_dir / split / LABELS).glob("*.txt")):
            try:
                parse_label(label.read_text(), MODEL_CLASS_IDS)
            except (AnnotationError, UnicodeDecodeError) as exc:
                problems.append(f"{split}/{label.name}: {exc}")
    return problems
