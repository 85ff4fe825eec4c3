"""ultralytics' ``labels.cache`` written from what we already know, instead of a scan.

On a new dataset ultralytics opens every image and label to build its cache (~2M files at
360k annotations). The catalogue already holds each output's size and label text, so the
cache is written directly: the same dict, the same hash (paths, sizes, mtimes), so
ultralytics loads it as its own and scans nothing. Correct under edits by construction:
store files are named by content hash, so edited content has a new path.

``write_labels_cache`` is the plain function (entries + target folder);
``prepare_labels_caches`` feeds it the facts a version's data.yaml names: the catalogue on
the host that built it, the manifest on a GPU node that synced it from the object store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from azaion_pipeline.lib.dataset.catalogue import Catalogue
from azaion_pipeline.lib.dataset.versions import YAML_KEYS, read_list
from azaion_pipeline.lib.dataset_store import VersionManifest
from azaion_pipeline.lib.layout import IMAGES, LABELS, SPLITS


@dataclass(frozen=True)
class LabelEntry:
    image: str  # file name in the split's images/ folder
    width: int
    height: int
    label_text: str


def _boxes(text: str) -> np.ndarray:
    rows = [line.split() for line in text.strip().splitlines() if line.strip()]
    boxes = np.array(rows, dtype=np.float32).reshape(-1, 5)
    # ultralytics drops repeated rows (and sorts them when it does): same here. A set of
    # rows finds repeats first: np.unique costs ~60 µs a label, most of a cache's writing.
    if len(boxes) > 1 and len(set(map(tuple, boxes.tolist()))) < len(boxes):
        _, keep = np.unique(boxes, axis=0, return_index=True)
        boxes = boxes[keep]
    return boxes


def write_labels_cache(split_dir: Path, entries: Iterable[LabelEntry], class_count: int) -> Path:
    """Write ``split_dir/labels.cache`` for the images ``entries`` name under
    ``split_dir/images`` (labels under ``split_dir/labels``), as ultralytics would.

    The hash also covers ultralytics' scan arguments (keypoints off, ``class_count``
    classes, not single-class); a training with other ones rescans, correctly.
    """
    from ultralytics.data.dataset import DATASET_CACHE_VERSION
    from ultralytics.data.utils import get_hash, img2label_paths, save_dataset_cache_file

    by_image = {str(split_dir / IMAGES / e.image): e for e in entries}
    images = sorted(by_image)  # ultralytics sorts the list file's paths
    labels = img2label_paths(images)
    cache = {
        "labels": [
            {
                "im_file": image,
                "shape": (by_image[image].height, by_image[image].width),
                "cls": (boxes := _boxes(by_image[image].label_text))[:, 0:1],
                "bboxes": boxes[:, 1:],
                "segments": [],
                "keypoints": None,
                "normalized": True,
                "bbox_format": "xywh",
            }
            for image in images
        ],
        "hash": get_hash(labels + images + [str((False, class_count, None, False))]),
        "results": (
            len(images),
            0,
            sum(not by_image[i].label_text.strip() for i in images),
            0,
            len(images),
        ),
        "msgs": [],
    }
    path = split_dir / f"{LABELS}.cache"
    save_dataset_cache_file("", path, cache, DATASET_CACHE_VERSION)
    return path


def prepare_labels_caches(data_yaml: Path) -> list[Path]:
    """Write the label caches of a version from the facts its data.yaml names. Called
    before training, so versions never trained cost nothing.

    One rule: caches come from wherever a version's facts are, the host's catalogue or a
    node's synced manifest (``dataset_store``). A data.yaml that names neither is left
    alone: ultralytics scans it."""
    spec = yaml.safe_load(Path(data_yaml).read_text())
    version_dir = Path(spec.get("path") or Path(data_yaml).parent).resolve()
    if "azaion_manifest" in spec:
        by_split = _manifest_entries(version_dir, version_dir / spec["azaion_manifest"])
    elif "azaion_catalogue" in spec:
        by_split = _catalogue_entries(spec, version_dir)
    else:
        return []
    return [
        write_labels_cache(version_dir / split, entries, int(spec["nc"]))
        for split, entries in by_split.items()
        if entries
    ]


def _manifest_entries(version_dir: Path, manifest: Path) -> dict[str, list[LabelEntry]]:
    """Every listed image with its label, as the node's pool holds it."""
    by_split: dict[str, list[LabelEntry]] = {split: [] for split in SPLITS}
    for e in VersionManifest.model_validate_json(manifest.read_bytes()).entries:
        label = version_dir / e.split / LABELS / e.label_file
        by_split[e.split].append(LabelEntry(e.file, e.width, e.height, label.read_text()))
    return by_split


def _catalogue_entries(spec: dict, version_dir: Path) -> dict[str, list[LabelEntry]]:
    """The catalogue's outputs the version lists. It forgets outputs of deleted annotations:
    a split of an older version that lists one gets no entries, so ultralytics scans it
    (slower, still correct)."""
    by_split: dict[str, list[LabelEntry]] = {}
    with Catalogue(Path(spec["azaion_catalogue"])) as catalogue:
        for split in SPLITS:
            listing = spec.get(YAML_KEYS[split])
            listed = (
                read_list(version_dir, split)
                if listing and (version_dir / listing).is_file()
                else []
            )
            entries = [
                LabelEntry(o.image, o.width, o.height, o.label_text)
                for o in catalogue.outputs_named(spec["azaion_settings_key"], listed)
            ]
            by_split[split] = entries if len(entries) == len(listed) else []
    return by_split
