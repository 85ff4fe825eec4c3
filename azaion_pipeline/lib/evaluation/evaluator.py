"""The evaluator: the exported ONNX through onnxruntime on a dataset version's test split.

The file describes itself (class names and input size are in its metadata), so what is
scored is exactly what edge devices load. Images are read in a thread while the previous
batch runs, and never all held at once.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from azaion_pipeline.lib.dataset.versions import DATA_YAML
from azaion_pipeline.lib.evaluate import split_images
from azaion_pipeline.lib.evaluation.scoring import Scores, score
from azaion_pipeline.lib.evaluation.slices import ensure_size_buckets
from azaion_pipeline.lib.parity import Detections, label_boxes, label_of, onnx_detections

TEST_SPLIT = "test"


@dataclass(frozen=True)
class TestSplit:
    images: list[Path]
    truths: list[Detections]  # normalised xyxy

    @property
    def names(self) -> list[str]:
        return [p.stem for p in self.images]


def load_test_split(dataset_dir: Path) -> TestSplit:
    images = split_images(Path(dataset_dir) / DATA_YAML, TEST_SPLIT)
    if not images:
        raise ValueError(f"the test split under {dataset_dir} has no images; cannot evaluate")
    return TestSplit(images, [label_boxes(label_of(p)) for p in images])


def export_names_and_size(session) -> tuple[dict[int, str], int]:
    meta = session.get_modelmeta().custom_metadata_map
    return ast.literal_eval(meta["names"]), int(ast.literal_eval(meta["imgsz"])[0])


def _read(paths: list[Path], imgsz: int) -> list[np.ndarray]:
    """Decoded images, larger ones shrunk to fit ``imgsz`` with area interpolation.

    That is how ultralytics' loader feeds training and validation; shrinking with the
    letterbox's bilinear resize instead aliases small objects and costs measurable AP.
    """
    import cv2

    images = []
    for path in paths:
        image = cv2.imread(str(path))
        if image is None:
            raise ValueError(f"test image {path} is unreadable")
        height, width = image.shape[:2]
        ratio = imgsz / max(height, width)
        if ratio < 1:
            size = (min(math.ceil(width * ratio), imgsz), min(math.ceil(height * ratio), imgsz))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        images.append(image)
    return images


def _batches(paths: list[Path], size: int, imgsz: int) -> Iterator[list[np.ndarray]]:
    """Batches of decoded images; the next one is read while the caller runs this one."""
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(_read, chunks[0], imgsz) if chunks else None
        for following in [*chunks[1:], None]:
            images = pending.result()
            pending = reader.submit(_read, following, imgsz) if following else None
            yield images


def onnx_predictions(session, images: list[Path], batch: int) -> list[Detections]:
    """Detections of an onnxruntime session on each image, boxes normalised to the image."""
    _, imgsz = export_names_and_size(session)
    found = []
    for chunk in _batches(images, batch, imgsz):
        for image, pixels in zip(chunk, onnx_detections(session, chunk, imgsz, batch), strict=True):
            height, width = image.shape[:2]  # boxes come back in the (shrunk) image's pixels
            scale = np.array([width, height, width, height], dtype=float)
            found.append(Detections(pixels.boxes / scale, pixels.scores, pixels.classes))
    return found


def evaluate_export(onnx_path: Path, dataset_dir: Path, batch: int) -> Scores:
    """AP overall and per slice, thresholds and confusion matrix of one ONNX on the test split."""
    import onnxruntime as ort

    split = load_test_split(Path(dataset_dir))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names, _ = export_names_and_size(session)
    predictions = onnx_predictions(session, split.images, batch)
    buckets = ensure_size_buckets(Path(dataset_dir) / DATA_YAML)
    return score(split.names, split.truths, predictions, names, buckets)
