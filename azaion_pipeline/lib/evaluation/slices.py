"""How test results are sliced: weather mode (class id offset) and object-size bucket.

Size bucket edges are quantiles of the *training* box areas (normalised w·h, so they do not
depend on image resolution): COCO's 32²/96² px suit ground photos, not drones. They are
computed once per dataset version and stored beside its data.yaml, where the evaluator reads
them. The dataset stage records them when it writes a version (``record_size_buckets``, from
the label texts its catalogue already holds: no file is read); a version without them (made
by hand, or before they were recorded) gets them from its train list's label files once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from azaion_pipeline.lib.classes import WEATHER_OFFSETS
from azaion_pipeline.lib.evaluate import split_images
from azaion_pipeline.lib.files import write_atomic
from azaion_pipeline.lib.parity import label_of

SIZE_BUCKETS_FILE = "size_buckets.json"
SIZE_LABELS = ("small", "medium", "large")
DEFAULT_QUANTILES = (1 / 3, 2 / 3)
# faster-coco-eval's "all" range; the last bucket ends there so the ranges tile it
AREA_MAX = 1e10


def weather_mode(class_id: int) -> str:
    """Norm / Wint / Night from the class id offset (0, 20, 40)."""
    return max((offset, name) for name, offset in WEATHER_OFFSETS.items() if offset <= class_id)[1]


class SizeBuckets(BaseModel):
    """Two area edges (fractions of the image) giving small / medium / large."""

    edges: tuple[float, float]
    quantiles: tuple[float, float]
    boxes: int = Field(ge=0, description="training boxes the quantiles were taken over")

    def ranges(self) -> dict[str, list[float]]:
        low, high = self.edges
        bounds = (0.0, low, high, AREA_MAX)
        return {label: [bounds[i], bounds[i + 1]] for i, label in enumerate(SIZE_LABELS)}


def label_areas(label_texts: Iterable[str]) -> np.ndarray:
    """Normalised box areas (w·h) of YOLO label texts (``class cx cy w h`` lines)."""
    return np.fromiter(
        (
            float(fields[3]) * float(fields[4])
            for text in label_texts
            for line in text.splitlines()
            if len(fields := line.split()) >= 5
        ),
        dtype=float,
    )


def size_bucket_edges(
    areas: np.ndarray, quantiles: tuple[float, float] = DEFAULT_QUANTILES
) -> SizeBuckets:
    if len(areas) == 0:
        raise ValueError("no training boxes: size buckets need at least one labelled box")
    low, high = (float(v) for v in np.quantile(areas, quantiles))
    return SizeBuckets(edges=(low, high), quantiles=quantiles, boxes=len(areas))


def record_size_buckets(
    version_dir: Path,
    train_label_texts: Iterable[str],
    quantiles: tuple[float, float] = DEFAULT_QUANTILES,
) -> SizeBuckets | None:
    """Store the size buckets of the train split's labels in ``version_dir``.

    None, and nothing stored, when the train split has no box: evaluating such a version
    fails with a clear error instead of the dataset stage failing.
    """
    areas = label_areas(train_label_texts)
    if not len(areas):
        return None
    buckets = size_bucket_edges(areas, quantiles)
    write_atomic(
        Path(version_dir) / SIZE_BUCKETS_FILE,
        json.dumps(buckets.model_dump(mode="json"), indent=1).encode(),
    )
    return buckets


def ensure_size_buckets(
    data_yaml: Path, quantiles: tuple[float, float] = DEFAULT_QUANTILES
) -> SizeBuckets:
    """The size buckets stored beside ``data_yaml``; from its train images' labels when missing.

    A version's train list never changes, so computing them late gives the same edges.
    """
    version_dir = Path(data_yaml).parent
    path = version_dir / SIZE_BUCKETS_FILE
    if path.exists():
        return SizeBuckets.model_validate_json(path.read_text())
    labels = (label_of(image) for image in split_images(Path(data_yaml), "train"))
    texts = (label.read_text() for label in labels if label.exists())
    buckets = record_size_buckets(version_dir, texts, quantiles)
    if buckets is None:
        raise ValueError(
            f"no training boxes in {data_yaml}: size buckets need at least one labelled box"
        )
    return buckets
