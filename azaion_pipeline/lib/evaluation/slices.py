"""How test results are sliced: weather mode (class id offset) and object-size bucket.

Size bucket edges are quantiles of the *training* box areas (normalised w·h, so they do not
depend on image resolution): COCO's 32²/96² px suit ground photos, not drones. They are
computed once per dataset version and stored beside its data.yaml, where the evaluator reads
them; the dataset stage calls ``ensure_size_buckets`` when it writes a version.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from azaion_pipeline.lib.classes import WEATHER_OFFSETS
from azaion_pipeline.lib.files import write_atomic
from azaion_pipeline.lib.layout import IMAGES, LABELS

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


def label_areas(labels_dir: Path) -> np.ndarray:
    """Normalised box areas (w·h) of every YOLO label file in ``labels_dir``."""
    areas = []
    for label in sorted(labels_dir.glob("*.txt")):
        rows = np.loadtxt(label, ndmin=2) if label.stat().st_size else np.zeros((0, 5))
        areas.append(rows[:, 3] * rows[:, 4])
    return np.concatenate(areas) if areas else np.zeros(0)


def size_bucket_edges(
    areas: np.ndarray, quantiles: tuple[float, float] = DEFAULT_QUANTILES
) -> SizeBuckets:
    if len(areas) == 0:
        raise ValueError("no training boxes: size buckets need at least one labelled box")
    low, high = (float(v) for v in np.quantile(areas, quantiles))
    return SizeBuckets(edges=(low, high), quantiles=quantiles, boxes=len(areas))


def ensure_size_buckets(
    dataset_dir: Path, quantiles: tuple[float, float] = DEFAULT_QUANTILES
) -> SizeBuckets:
    """The dataset version's stored size buckets; computed from train labels on first call.

    A version's train split never changes, so computing them late gives the same edges.
    """
    path = Path(dataset_dir) / SIZE_BUCKETS_FILE
    if path.exists():
        return SizeBuckets.model_validate_json(path.read_text())
    buckets = size_bucket_edges(label_areas(Path(dataset_dir) / "train" / LABELS), quantiles)
    write_atomic(path, json.dumps(buckets.model_dump(mode="json"), indent=1).encode())
    return buckets


def split_folders(dataset_dir: Path, split: str) -> tuple[Path, Path]:
    return Path(dataset_dir) / split / IMAGES, Path(dataset_dir) / split / LABELS
