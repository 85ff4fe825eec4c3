"""A synthetic annotated set in the Azaion layout, for the demo, tests and benchmarks.

Images are coloured shapes on a noisy gradient, so a tiny YOLO has something to learn;
each shape's box is written in YOLO format with a class id from the catalogue
(base id + weather offset). ``with_defects`` adds one pair per quarantine reason.
``LEARNABLE`` is an easier style (two classes, large shapes) that a tiny YOLO learns to
detect within a minute of CPU training, for tests and benchmarks that need real mAP.
"""

from __future__ import annotations

import random
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from azaion_pipeline.lib.classes import WEATHER_OFFSETS, ClassCatalog
from azaion_pipeline.lib.layout import AzaionLayout

# Image sizes are drawn from this range unless a fixed size is asked for.
DEFAULT_SIZE_RANGE = ((192, 144), (480, 360))
EMPTY_LABEL_SHARE = 0.12
SEED_SHARE = 0.1
MAX_OBJECTS = 4


@dataclass(frozen=True)
class SampleStyle:
    """What the shapes look like; the default mixes every class and weather mode."""

    classes: int | None = None  # only the first N base classes (None: all)
    weather: bool = True  # False: Norm ids only, so one id per colour
    # box sides are drawn between side // first and side // second
    size_divisors: tuple[int, int] = (10, 3)
    max_objects: int = MAX_OBJECTS
    empty_share: float = EMPTY_LABEL_SHARE

    def __post_init__(self):
        low, high = self.size_divisors
        if not 1 <= high <= low:
            raise ValueError(f"size_divisors must be (larger, smaller) >= 1: {self.size_divisors}")
        if self.classes is not None and self.classes < 1:
            raise ValueError(f"classes must be >= 1 or None, got {self.classes}")
        if self.max_objects < 1 or not 0.0 <= self.empty_share <= 1.0:
            raise ValueError(f"max_objects must be >= 1 and empty_share in [0, 1]: {self}")


DEFAULT_STYLE = SampleStyle()
# Few distinct colours, boxes a quarter to half of the image side.
LEARNABLE = SampleStyle(
    classes=2, weather=False, size_divisors=(4, 2), max_objects=2, empty_share=0.0
)
# TrainingConfig fields that learn LEARNABLE 128 px images (about 70 train images) to test
# mAP50 0.55-0.75 in about a minute on two CPU cores, whatever the float kernels. Found by
# trial, with the training seed standing in for another CPU (both change the trajectory):
# the earlier 20 epochs at 64 px, batch 4, lr 0.005 without warm-up scored 0.51, 0.16 and
# 0.01 on seeds 0-2 (and 0.25 on an AMD EPYC). 96 px keeps the small shapes ~24 px, batch 8
# and lr 0.002 with one warm-up epoch keep the steps small enough not to diverge. Optimizer
# auto would pick AdamW at lr 1.2e-4 for nc=80 and stay at 0 mAP for dozens of epochs;
# mosaic shrinks the shapes to specks; the doubled class loss lifts the 80-way head off its
# near-zero start.
LEARNABLE_TRAINING = {
    "epochs": 30,
    "imgsz": 96,
    "batch": 8,
    "optimizer": "AdamW",
    "hyperparameters": {"lr0": 0.002, "warmup_epochs": 1.0, "mosaic": 0.0, "cls": 2.0},
}


@dataclass
class SampleReport:
    root: Path
    valid: list[str] = field(default_factory=list)
    seed: list[str] = field(default_factory=list)
    # defect kind -> names written for it (what raw_annotations should quarantine)
    defects: dict[str, list[str]] = field(default_factory=dict)


def _hex_to_bgr(color: str) -> tuple[int, int, int]:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return b, g, r


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth random gradient plus noise: cheap, varied, and compresses like a photo."""
    top, bottom = rng.integers(40, 200, size=(2, 3))
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    image = top * (1 - ramp) + bottom * ramp
    image = np.broadcast_to(image, (height, width, 3)).astype(np.float32)
    image = image + rng.normal(0, 12, size=(height, width, 3)).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def render_annotation(
    rng: np.random.Generator,
    catalog: ClassCatalog,
    width: int,
    height: int,
    objects: int,
    style: SampleStyle = DEFAULT_STYLE,
) -> tuple[np.ndarray, list[tuple[int, float, float, float, float]]]:
    """One image with ``objects`` shapes, and their YOLO boxes ``(class, cx, cy, w, h)``."""
    import cv2

    image = _background(rng, width, height)
    weather_offset = int(rng.choice(list(WEATHER_OFFSETS.values()))) if style.weather else 0
    classes = catalog.base[: style.classes]
    low, high = style.size_divisors
    boxes = []
    for _ in range(objects):
        base = classes[int(rng.integers(len(classes)))]
        w = int(rng.integers(max(8, width // low), max(9, width // high)))
        h = int(rng.integers(max(8, height // low), max(9, height // high)))
        x0 = int(rng.integers(0, width - w))
        y0 = int(rng.integers(0, height - h))
        color = _hex_to_bgr(base.color)
        if rng.random() < 0.5:
            cv2.rectangle(image, (x0, y0), (x0 + w - 1, y0 + h - 1), color, thickness=-1)
        else:
            center = (x0 + w // 2, y0 + h // 2)
            cv2.ellipse(image, center, (w // 2, h // 2), 0, 0, 360, color, thickness=-1)
        boxes.append(
            (
                base.id + weather_offset,
                (x0 + w / 2) / width,
                (y0 + h / 2) / height,
                w / width,
                h / height,
            )
        )
    return image, boxes


def format_label(boxes: list[tuple[int, float, float, float, float]]) -> str:
    return "".join(f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for c, cx, cy, w, h in boxes)


def _encode_jpeg(image: np.ndarray) -> bytes:
    import cv2

    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return buffer.tobytes()


def _write_pair(folder: Path, name: str, image: bytes | None, label: str | None) -> None:
    images, labels = AzaionLayout.images_and_labels(folder)
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    if image is not None:
        (images / f"{name}.jpg").write_bytes(image)
    if label is not None:
        (labels / f"{name}.txt").write_text(label)


def generate_sample_data(
    layout: AzaionLayout,
    catalog: ClassCatalog,
    images: int,
    seed: int = 0,
    with_defects: bool = False,
    size: tuple[int, int] | None = None,
    size_range: tuple[tuple[int, int], tuple[int, int]] = DEFAULT_SIZE_RANGE,
    style: SampleStyle = DEFAULT_STYLE,
) -> SampleReport:
    """Write ``images`` valid annotations (about 10% of them into data-seed/).

    ``size`` fixes every image to ``(width, height)``; otherwise sizes vary within
    ``size_range``. Names are UUIDs drawn from ``seed``, so a seed reproduces the set.
    ``style`` decides classes, shape sizes and counts (see ``LEARNABLE``).
    """
    if images < 0:
        raise ValueError(f"images must be >= 0, got {images}")
    rng = np.random.default_rng(seed)
    names = random.Random(seed)
    report = SampleReport(root=layout.root)
    seed_count = max(1, round(images * SEED_SHARE)) if images >= 5 else 0

    def new_name() -> str:
        return str(uuid.UUID(int=names.getrandbits(128), version=4))

    def random_pair() -> tuple[bytes, str]:
        if size:
            width, height = size
        else:
            (wmin, hmin), (wmax, hmax) = size_range
            width, height = int(rng.integers(wmin, wmax + 1)), int(rng.integers(hmin, hmax + 1))
        empty = rng.random() < style.empty_share
        objects = 0 if empty else int(rng.integers(1, style.max_objects + 1))
        image, boxes = render_annotation(rng, catalog, width, height, objects, style)
        return _encode_jpeg(image), format_label(boxes)

    for index in range(images):
        name = new_name()
        in_seed = index < seed_count
        _write_pair(layout.data_seed if in_seed else layout.data, name, *random_pair())
        (report.seed if in_seed else report.valid).append(name)

    if with_defects:
        report.defects = _write_defects(layout, rng, new_name, random_pair)
    return report


def _write_defects(layout, rng, new_name, random_pair) -> dict[str, list[str]]:
    """One pair (or a few) per quarantine reason, all under data/."""
    defects: dict[str, list[str]] = {}

    def add(kind: str, image: bytes | None, label: str | None, name: str | None = None) -> str:
        name = name or new_name()
        _write_pair(layout.data, name, image, label)
        defects.setdefault(kind, []).append(name)
        return name

    jpeg, label = random_pair()
    add("image_missing", None, label)
    add("label_missing", jpeg, None)
    add("image_unreadable", b"", label)  # zero bytes
    add("image_unreadable", jpeg[: len(jpeg) // 2], label)  # truncated
    add("image_unreadable", b"this is a text file, not an image\n", label)
    add("image_unreadable", jpeg[:4] + bytes(rng.integers(0, 256, 2048, dtype=np.uint8)), label)
    add("label_syntax", jpeg, "0 0.5 0.5 0.2\n")
    add("label_syntax", jpeg, "tank 0.5 0.5 0.2 0.2\n")
    add("class_unknown", jpeg, "17 0.5 0.5 0.2 0.2\n")
    add("coords_out_of_range", jpeg, "0 1.25 0.5 0.2 0.2\n")
    add("box_degenerate", jpeg, "0 0.5 0.5 0.0 0.2\n")
    add("unsafe_name", jpeg, label, name=f"..{new_name()}")
    add("unsafe_name", jpeg, label, name=f"bad\x07{new_name()}")
    add("image_too_large", _encode_jpeg(np.zeros((6000, 8000), np.uint8)), "")

    # A byte-identical copy of a valid image under another name.
    images = sorted((layout.data / "images").glob("*.jpg"))
    valid = [p for p in images if p.stem not in {n for ns in defects.values() for n in ns}]
    if valid:
        original = valid[0]
        # Named to sort after the original: the first name in order is the one kept.
        copy = f"{original.stem}-copy"
        shutil.copyfile(original, layout.data / "images" / f"{copy}.jpg")
        shutil.copyfile(
            layout.data / "labels" / f"{original.stem}.txt", layout.data / "labels" / f"{copy}.txt"
        )
        defects["duplicate"] = [copy]
    return defects
