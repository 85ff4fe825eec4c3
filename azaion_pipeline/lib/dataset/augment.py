"""Augmentation: each annotation becomes its original plus N variants (Azaion's transforms).

Outputs live in a content-addressed store, ``data-processed/aug-{settings key}/{images,labels}``,
named by annotation and content hash, so a change of settings never mixes its outputs
with an earlier one's and an edit never overwrites a file a version lists. The catalogue
records every output: a re-run augments only annotations without current outputs, with
no existence checks and no state file. Variants are seeded from the annotation's content hash and the settings, so a re-run
gives identical labels whichever worker does the work.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from azaion_pipeline.lib.dataset.catalogue import Accepted, Catalogue, Output
from azaion_pipeline.lib.files import link_or_copy, write_atomic
from azaion_pipeline.lib.hashing import sha256_text
from azaion_pipeline.lib.layout import IMAGES, LABELS
from azaion_pipeline.lib.parallel import map_in_processes, map_in_threads
from azaion_pipeline.lib.records import Record

# Bump when the transform list below changes: it is part of the output folder's key.
TRANSFORMS_REVISION = "azaion-v2"
MAX_VARIANTS = 7


class AugmentedSet(Record):
    """augmented_dataset's output: the store of one settings key, as the catalogue lists it."""

    version: str  # the dataset version id the catalogue's split lists give now
    annotations_version: str  # the AnnotationSet this was made from
    catalogue: Path
    settings_key: str
    output_dir: Path
    images: int  # images in the three split lists
    augmented_now: int
    failures: dict[str, str]


class AugmentSettings(BaseModel):
    """What shapes the outputs; every field is part of the store's key.

    The single home of these defaults and bounds: ``augmented_dataset``'s run config
    inherits them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    variants: int = Field(
        default=MAX_VARIANTS, ge=0, le=MAX_VARIANTS, description="Variants per annotation."
    )
    min_box_size: float = Field(
        default=0.01,  # Azaion's
        ge=0,
        lt=1,
        description="Drop boxes narrower/lower than this (fraction of the image).",
    )
    min_visibility: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Drop boxes keeping less than this share of their area after clipping.",
    )
    jpeg_quality: int = Field(default=95, ge=50, le=100, description="JPEG quality of variants.")

    @property
    def key(self) -> str:
        """Names the output folder: equal settings (and transforms) share outputs."""
        return sha256_text([TRANSFORMS_REVISION, json.dumps(self.model_dump(), sort_keys=True)])[
            :12
        ]


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

    from azaion_pipeline.lib.dataset.augment_transforms import FlipThenAffine, LutHueSaturationValue

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
    label_sha256: str
    content_hash: str
    width: int
    height: int
    boxes: list  # [[class_id, cx, cy, w, h], ...] as validated by raw_annotations

    @classmethod
    def of(cls, annotation: Accepted) -> AugmentTask:
        return cls(
            annotation.name,
            annotation.image,
            annotation.label,
            annotation.label_sha256,
            annotation.content_hash,
            annotation.width,
            annotation.height,
            annotation.boxes,
        )


@dataclass
class AugmentOutcome:
    name: str
    outputs: list[Output] = field(default_factory=list)
    error: str | None = None


def output_names(
    name: str, content_hash: str, image_suffix: str, variants: int
) -> list[tuple[str, str, int]]:
    """``(image file, label file, variant)`` for the original (variant 0) and each variant.

    Names carry the content hash: an edited annotation gets new files, so no dataset
    version (nor ultralytics' label cache, keyed by paths) ever sees other content under
    a path it already knows, even when the edit keeps the file size.
    """
    tag = content_hash[:16]
    outputs = [(f"{name}.{tag}{image_suffix}", f"{name}.{tag}.txt", 0)]
    outputs += [
        (f"{name}_{i}.{tag}.jpg", f"{name}_{i}.{tag}.txt", i) for i in range(1, variants + 1)
    ]
    return outputs


def augment_one(task: AugmentTask, output_dir: Path, settings: AugmentSettings) -> AugmentOutcome:
    """Write the original (image hard-linked) and ``settings.variants`` variants of one
    annotation into the store; on any failure remove what this task wrote."""
    images, labels = output_dir / IMAGES, output_dir / LABELS
    names = output_names(task.name, task.content_hash, Path(task.image).suffix, settings.variants)
    try:
        return AugmentOutcome(task.name, _write_outputs(task, names, images, labels, settings))
    except Exception as exc:  # one bad image (or a full disk) is reported, never fatal
        for image, label, _ in names:
            (images / image).unlink(missing_ok=True)
            (labels / label).unlink(missing_ok=True)
        return AugmentOutcome(task.name, error=f"{type(exc).__name__}: {exc}")


def _write_outputs(task, names, images: Path, labels: Path, settings) -> list[Output]:
    import cv2
    import numpy as np

    original_image, original_label, _ = names[0]
    link_or_copy(task.image, images / original_image)
    # The label is copied, never linked: an in-place edit in data/ must not reach the store.
    label_bytes = Path(task.label).read_bytes()
    if hashlib.sha256(label_bytes).hexdigest() != task.label_sha256:
        raise ValueError("the label changed after validation; the next run takes it again")
    write_atomic(labels / original_label, label_bytes)

    def output(image_file, label_file, variant, width, height, text) -> Output:
        size = (images / image_file).stat().st_size
        return Output(
            task.name, variant, task.content_hash, image_file, label_file, size, width, height, text
        )

    outputs = [output(*names[0], task.width, task.height, label_bytes.decode("utf-8"))]
    if settings.variants == 0:
        return outputs
    image = decode_bgra(task.image)
    class_ids = [int(b[0]) for b in task.boxes]
    boxes = np.array([b[1:] for b in task.boxes], dtype=np.float32).reshape(-1, 4)
    transform = _process_transform(settings)
    transform.set_random_seed(variant_seed(task.content_hash, settings))
    encode = [cv2.IMWRITE_JPEG_QUALITY, settings.jpeg_quality]
    for image_file, label_file, variant in names[1:]:
        result = transform(image=image, bboxes=boxes, class_ids=class_ids)
        ok, jpeg = cv2.imencode(".jpg", result["image"], encode)
        if not ok:
            raise ValueError("OpenCV could not encode a variant")
        write_atomic(images / image_file, jpeg.tobytes())
        text = format_boxes(result["class_ids"], result["bboxes"], settings.min_box_size)
        write_atomic(labels / label_file, text.encode())
        height, width = result["image"].shape[:2]
        outputs.append(output(image_file, label_file, variant, width, height, text))
    return outputs


def decode_bgra(path: str):
    """The image as 4-channel BGRA, the same pixels as ``cv2.imread`` gives (tested).

    Four channels: OpenCV's warp has a SIMD path for 4 channels about twice as fast as for
    3, with the same values per channel; the JPEG encoder drops the fourth. An upright JPEG
    goes through simplejpeg (libjpeg-turbo straight into BGRA: half OpenCV's decode time and
    no colour conversion); anything else (PNG, an EXIF rotation that ``cv2.imread`` applies,
    CMYK, a broken file) through OpenCV.
    """
    import cv2
    import numpy as np
    import simplejpeg

    data = Path(path).read_bytes()
    with suppress(ValueError, OSError):  # not a JPEG simplejpeg can take as it is
        if simplejpeg.is_jpeg(data) and _upright(data):
            return simplejpeg.decode_jpeg(data, colorspace="BGRA")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("OpenCV could not decode the image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)


def _upright(jpeg: bytes) -> bool:
    """No EXIF orientation other than 'as stored' (Pillow reads only the header)."""
    from PIL import ExifTags, Image

    with Image.open(io.BytesIO(jpeg)) as image:
        return image.getexif().get(ExifTags.Base.Orientation, 1) == 1


@dataclass
class AugmentReport:
    output_dir: Path
    augmented: int  # annotations processed this run
    failures: dict[str, str] = field(default_factory=dict)  # name -> error


def store_dir(processed_root: Path, settings: AugmentSettings) -> Path:
    """The content-addressed store of one settings key: ``aug-{key}/{images,labels}``."""
    return processed_root / f"aug-{settings.key}"


def augment_pending(
    catalogue: Catalogue,
    processed_root: Path,
    settings: AugmentSettings,
    workers: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
    chunk: int = 2000,
) -> AugmentReport:
    """Augment the annotations whose outputs for ``settings`` are missing or outdated.

    Work goes in chunks, each recorded in the catalogue when done: memory stays bounded
    and a killed run keeps every finished chunk. Files of annotations that left stay in
    the store until retention removes them (an older version may still list them).
    """
    output_dir = store_dir(processed_root, settings)
    (output_dir / IMAGES).mkdir(parents=True, exist_ok=True)
    (output_dir / LABELS).mkdir(parents=True, exist_ok=True)
    # Rows changed after this have no split yet: they stay pending for a later run.
    through = catalogue.assigned_through()
    names = catalogue.pending(settings.key)
    report = AugmentReport(output_dir, augmented=0)
    run = catalogue.next_run()
    work = partial(augment_one, output_dir=output_dir, settings=settings)
    for start in range(0, len(names), chunk):
        tasks = [
            AugmentTask.of(a) for a in catalogue.iter_annotations(names[start : start + chunk])
        ]
        # Originals only (variants 0) is linking and copying: threads, no process start-up.
        outcomes = (map_in_processes if settings.variants else map_in_threads)(work, tasks, workers)
        with catalogue.transaction():
            for outcome in outcomes:
                if outcome.error:
                    report.failures[outcome.name] = outcome.error
                else:
                    catalogue.add_outputs(settings.key, outcome.outputs, run)
                    report.augmented += 1
        if on_progress:
            on_progress(start + len(tasks), len(names))
    if not report.failures:  # a failed one stays pending: the next run tries it again
        catalogue.mark_augmented(settings.key, through)
    return report
