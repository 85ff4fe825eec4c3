"""Augmentation: each annotation becomes its original plus N variants (Azaion's transforms).

Outputs live in ``data-processed/aug-{settings key}/{images,labels}``, so a change of
settings never mixes its outputs with an earlier one's. A state file records which
annotation content each output came from: a re-run skips annotations already done with
the same settings and removes the outputs of annotations that left the input.
Variants are seeded from the annotation's content hash and the settings, so a re-run
gives identical labels whichever worker does the work.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path

from azaion_pipeline.lib.files import link_or_copy, write_atomic
from azaion_pipeline.lib.hashing import sha256_text
from azaion_pipeline.lib.layout import IMAGES, LABELS
from azaion_pipeline.lib.parallel import map_in_processes
from azaion_pipeline.lib.records import Record

# Bump when the transform list below changes: it is part of the output folder's key.
TRANSFORMS_REVISION = "azaion-v2"
STATE_FILE = "state.json"
MAX_VARIANTS = 7


class AugmentedSet(Record):
    """augmented_dataset's output: originals + variants (listed in ``manifest``) and the tally."""

    version: str
    annotations_version: str  # the AnnotationSet this was made from
    settings_key: str
    output_dir: Path
    manifest: Path
    images: int
    sources: int
    augmented_now: int
    skipped_unchanged: int
    removed: int
    failures: dict[str, str]


@dataclass(frozen=True)
class AugmentSettings:
    variants: int = MAX_VARIANTS
    # Boxes narrower or lower than this fraction of the image are dropped (Azaion: 0.01).
    min_box_size: float = 0.01
    # A box keeping less than this share of its area after clipping is dropped.
    min_visibility: float = 0.01
    jpeg_quality: int = 95

    def __post_init__(self):
        if not 0 <= self.variants <= MAX_VARIANTS:
            raise ValueError(f"variants must be 0..{MAX_VARIANTS}, got {self.variants}")

    @property
    def key(self) -> str:
        """Names the output folder: equal settings (and transforms) share outputs."""
        return sha256_text([TRANSFORMS_REVISION, json.dumps(asdict(self), sort_keys=True)])[:12]


def build_transform(settings: AugmentSettings, seed: int):
    """Azaion's transform list (AZAION_FORMAT.md) with YOLO boxes clipped.

    Same transforms, ranges and probabilities as Azaion's Compose of HorizontalFlip(0.6),
    RandomBrightnessContrast(0.4), Affine(0.8), MotionBlur(0.1), HueSaturationValue(0.4).
    Brightness/contrast runs first: a per-pixel map commutes with a mirror, and that lets
    the flip share the affine warp (``FlipThenAffine``); hue/saturation/value is one lookup
    table (``LutHueSaturationValue``). Both are in ``augment_transforms``.
    """
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network calls on import
    import albumentations as A

    from azaion_pipeline.lib.augment_transforms import FlipThenAffine, LutHueSaturationValue

    return A.Compose(
        [
            A.RandomBrightnessContrast(p=0.4),
            FlipThenAffine(scale=(0.8, 1.2), rotate=(-35, 35), shear=(-10, 10), p=1.0),
            A.MotionBlur(p=0.1),
            LutHueSaturationValue(p=0.4),
        ],
        bbox_params=yolo_box_params(settings),
        seed=seed,
    )


def yolo_box_params(settings: AugmentSettings):
    """YOLO boxes clipped to the image; boxes left with too little of their area are dropped."""
    import albumentations as A

    return A.BboxParams(
        format="yolo",
        label_fields=["class_ids"],
        clip=True,
        min_visibility=settings.min_visibility,
    )


@lru_cache(maxsize=4)
def _process_transform(settings: AugmentSettings):
    """One Compose per process, reseeded per annotation: building it costs ~4 ms a time.

    ``set_random_seed`` is what the constructor's ``seed=`` calls, so a reseeded Compose
    draws exactly what a fresh one would.
    """
    return build_transform(settings, seed=0)


def variant_seed(content_hash: str, settings: AugmentSettings) -> int:
    return int(sha256_text([content_hash, settings.key])[:8], 16)


def format_boxes(class_ids, boxes, min_box_size: float) -> str:
    lines = []
    for class_id, (cx, cy, w, h) in zip(class_ids, boxes, strict=True):
        if w < min_box_size or h < min_box_size:
            continue
        lines.append(f"{int(class_id)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(lines)


@dataclass(frozen=True)
class AugmentTask:
    name: str
    image: str
    label: str
    content_hash: str
    boxes: list  # [[class_id, cx, cy, w, h], ...] as validated by raw_annotations


@dataclass
class AugmentOutcome:
    name: str
    error: str | None = None


def output_names(name: str, image_suffix: str, variants: int) -> list[tuple[str, str, int]]:
    """``(image file, label file, variant)`` for the original (variant 0) and each variant."""
    outputs = [(f"{name}{image_suffix}", f"{name}.txt", 0)]
    outputs += [(f"{name}_{i}.jpg", f"{name}_{i}.txt", i) for i in range(1, variants + 1)]
    return outputs


def augment_one(task: AugmentTask, output_dir: Path, settings: AugmentSettings) -> AugmentOutcome:
    """Write the original (hard-linked) and ``settings.variants`` variants of one annotation."""
    import cv2
    import numpy as np

    try:
        images, labels = output_dir / IMAGES, output_dir / LABELS
        suffix = Path(task.image).suffix
        outputs = output_names(task.name, suffix, settings.variants)
        original_image, original_label, _ = outputs[0]
        link_or_copy(task.image, images / original_image)
        link_or_copy(task.label, labels / original_label)
        if settings.variants == 0:
            return AugmentOutcome(task.name)

        image = cv2.imread(task.image, cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError("OpenCV could not decode the image")
        # Four channels: OpenCV's warp has a SIMD path for 4 channels about twice as fast
        # as for 3, with the same values per channel; the JPEG encoder drops the fourth.
        image = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
        class_ids = [int(b[0]) for b in task.boxes]
        boxes = np.array([b[1:] for b in task.boxes], dtype=np.float32).reshape(-1, 4)
        transform = _process_transform(settings)
        transform.set_random_seed(variant_seed(task.content_hash, settings))
        encode = [cv2.IMWRITE_JPEG_QUALITY, settings.jpeg_quality]
        for image_name, label_name, _ in outputs[1:]:
            result = transform(image=image, bboxes=boxes, class_ids=class_ids)
            ok, jpeg = cv2.imencode(".jpg", result["image"], encode)
            if not ok:
                raise ValueError("OpenCV could not encode a variant")
            write_atomic(images / image_name, jpeg.tobytes())
            text = format_boxes(result["class_ids"], result["bboxes"], settings.min_box_size)
            write_atomic(labels / label_name, text.encode())
    except Exception as exc:  # one bad image is reported, never fatal to the run
        return AugmentOutcome(task.name, error=f"{type(exc).__name__}: {exc}")
    return AugmentOutcome(task.name)


@dataclass
class AugmentResult:
    output_dir: Path
    entries: list[dict]  # one per output image: image, label, source, variant, source_hash
    augmented: int  # annotations processed this run
    skipped: int  # already done with the same settings
    removed: int  # left the input: outputs deleted
    failures: dict[str, str] = field(default_factory=dict)  # name -> error


def _load_state(path: Path) -> dict[str, dict]:
    return json.loads(path.read_text()) if path.exists() else {}


def _outputs_exist(output_dir: Path, name: str, record: dict, variants: int) -> bool:
    return all(
        (output_dir / IMAGES / image).exists() and (output_dir / LABELS / label).exists()
        for image, label, _ in output_names(name, record["suffix"], variants)
    )


def _remove_outputs(output_dir: Path, name: str, record: dict, variants: int) -> None:
    # Derived files only: the inputs they came from are never touched here.
    for image, label, _ in output_names(name, record["suffix"], variants):
        (output_dir / IMAGES / image).unlink(missing_ok=True)
        (output_dir / LABELS / label).unlink(missing_ok=True)


def _variant_name_clashes(annotations: dict[str, dict], variants: int) -> dict[str, str]:
    """Names that equal another annotation's variant output (``x_3`` next to ``x``)."""
    clashes = {}
    for name in annotations:
        stem, _, number = name.rpartition("_")
        if stem in annotations and number.isdigit() and 1 <= int(number) <= variants:
            clashes[name] = f"its outputs would overwrite variant {number} of {stem}"
    return clashes


def augment_dataset(
    annotations: list[dict],
    processed_root: Path,
    settings: AugmentSettings,
    workers: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> AugmentResult:
    """Bring ``processed_root/aug-{key}`` up to date with ``annotations`` (manifest entries)."""
    output_dir = processed_root / f"aug-{settings.key}"
    (output_dir / IMAGES).mkdir(parents=True, exist_ok=True)
    (output_dir / LABELS).mkdir(parents=True, exist_ok=True)
    state_path = output_dir / STATE_FILE
    state = _load_state(state_path)
    current = {a["name"]: a for a in annotations}

    removed = 0
    for name in sorted(state):
        annotation = current.get(name)
        if annotation is None or annotation["content_hash"] != state[name]["content_hash"]:
            _remove_outputs(output_dir, name, state.pop(name), settings.variants)
            removed += annotation is None

    failures = _variant_name_clashes(current, settings.variants)
    todo = [
        AugmentTask(a["name"], a["image"], a["label"], a["content_hash"], a["boxes"])
        for name, a in sorted(current.items())
        if name not in failures
        and (
            name not in state
            or not _outputs_exist(output_dir, name, state[name], settings.variants)
        )
    ]
    work = partial(augment_one, output_dir=output_dir, settings=settings)
    tasks_by_name = {task.name: task for task in todo}
    for outcome in map_in_processes(work, todo, workers, on_progress):
        task = tasks_by_name[outcome.name]
        if outcome.error:
            failures[task.name] = outcome.error
            # No half-augmented annotation stays behind; the next run retries it.
            _remove_outputs(
                output_dir, task.name, {"suffix": Path(task.image).suffix}, settings.variants
            )
            state.pop(task.name, None)
            continue
        state[task.name] = {"content_hash": task.content_hash, "suffix": Path(task.image).suffix}
    write_atomic(state_path, json.dumps(state, sort_keys=True).encode())

    entries = []
    for name in sorted(state):
        for image, label, variant in output_names(name, state[name]["suffix"], settings.variants):
            entries.append(
                {
                    "image": str(output_dir / IMAGES / image),
                    "label": str(output_dir / LABELS / label),
                    "source": name,
                    "variant": variant,
                    "source_hash": state[name]["content_hash"],
                }
            )
    return AugmentResult(
        output_dir=output_dir,
        entries=entries,
        augmented=len(todo) - len(failures.keys() & tasks_by_name.keys()),
        skipped=len(current) - len(todo) - len(failures.keys() - tasks_by_name.keys()),
        removed=removed,
        failures=failures,
    )
