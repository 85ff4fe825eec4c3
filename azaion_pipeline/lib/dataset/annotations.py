"""Annotations: YOLO label parsing and validation of one image/label pair.

Every problem is a ``Rejection`` with one of ``Reason``; the caller quarantines it.
Nothing here raises on bad data, so one bad file never stops a run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from azaion_pipeline.lib.hashing import sha256_file, sha256_text

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
LABEL_SUFFIX = ".txt"
MAX_NAME_BYTES = 255
# YOLO's loader cannot learn from (and OpenCV's warp misbehaves on) images this small.
MIN_IMAGE_SIDE = 10
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
DEFAULT_MAX_LABEL_BYTES = 4 << 20
DEFAULT_MAX_BOXES = 1000


@dataclass(frozen=True)
class ValidationRules:
    """What a pair must satisfy; part of the catalogue's key, so new rules re-validate."""

    valid_ids: frozenset[int]
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_label_bytes: int = DEFAULT_MAX_LABEL_BYTES
    max_boxes: int = DEFAULT_MAX_BOXES

    @property
    def key(self) -> str:
        values = {**asdict(self), "valid_ids": sorted(self.valid_ids)}
        return sha256_text([json.dumps(values, sort_keys=True), str(MIN_IMAGE_SIDE)])


class Reason(StrEnum):
    IMAGE_MISSING = "image_missing"
    LABEL_MISSING = "label_missing"
    IMAGE_UNREADABLE = "image_unreadable"
    LABEL_SYNTAX = "label_syntax"
    CLASS_UNKNOWN = "class_unknown"
    COORDS_OUT_OF_RANGE = "coords_out_of_range"
    BOX_DEGENERATE = "box_degenerate"
    UNSAFE_NAME = "unsafe_name"
    IMAGE_TOO_LARGE = "image_too_large"
    IMAGE_TOO_SMALL = "image_too_small"
    LABEL_TOO_LARGE = "label_too_large"
    # YOLO's loader skips names starting with a dot: training would silently lose them.
    HIDDEN_NAME = "hidden_name"
    # A link could point anywhere (outside the root): its target is never linked or read.
    SYMLINK = "symlink"
    # Two images share one name (e.g. x.jpg and x.png, or x in data/ and in data-seed/).
    NAME_CONFLICT = "name_conflict"

    @staticmethod
    def duplicate_of(name: str) -> str:
        return f"duplicate_of:{name}"


class AnnotationError(ValueError):
    def __init__(self, reason: Reason, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Box:
    class_id: int
    cx: float
    cy: float
    w: float
    h: float


def parse_label(text: str, valid_ids: frozenset[int]) -> list[Box]:
    """YOLO boxes from label text; raises ``AnnotationError`` for the first bad line.

    Blank lines are ignored; an empty file is a valid image with no objects.
    """
    boxes = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise AnnotationError(
                Reason.LABEL_SYNTAX, f"line {number}: {len(fields)} fields, expected 5"
            )
        try:
            class_id = int(fields[0])
            coords = [float(v) for v in fields[1:]]
        except ValueError:
            raise AnnotationError(
                Reason.LABEL_SYNTAX, f"line {number}: not numbers: {line.strip()[:80]!r}"
            ) from None
        if not all(math.isfinite(v) for v in coords):
            raise AnnotationError(Reason.LABEL_SYNTAX, f"line {number}: non-finite coordinate")
        if class_id not in valid_ids:
            raise AnnotationError(Reason.CLASS_UNKNOWN, f"line {number}: class id {class_id}")
        if not all(0.0 <= v <= 1.0 for v in coords):
            raise AnnotationError(
                Reason.COORDS_OUT_OF_RANGE, f"line {number}: {coords} not all in [0, 1]"
            )
        if coords[2] <= 0 or coords[3] <= 0:
            raise AnnotationError(
                Reason.BOX_DEGENERATE, f"line {number}: width {coords[2]}, height {coords[3]}"
            )
        boxes.append(Box(class_id, *coords))
    return boxes


def unsafe_name_detail(name: str) -> str | None:
    """Why ``name`` cannot be used as a file stem downstream, or None when it is safe."""
    if not name:
        return "empty name"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if ".." in name:
        return "contains '..'"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "contains control characters"
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        return f"longer than {MAX_NAME_BYTES} bytes"
    return None


def inspect_image(path: Path, max_pixels: int) -> tuple[int, int, int]:
    """``(width, height, pHash)`` of a fully decodable image within the size limits.

    The perceptual hash is taken from the decoded pixels here, so near-duplicate grouping
    costs no second decode.
    """
    import imagehash
    from PIL import Image, UnidentifiedImageError

    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise AnnotationError(Reason.IMAGE_UNREADABLE, f"unsupported image type {path.suffix!r}")
    if path.stat().st_size == 0:
        raise AnnotationError(Reason.IMAGE_UNREADABLE, "zero bytes")
    # Our own pixel limit applies first; Pillow's bomb warning would only be noise. A
    # process-wide filter: catch_warnings is not safe on the validation threads.
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise AnnotationError(
                    Reason.IMAGE_TOO_LARGE,
                    f"{width}x{height} = {width * height} pixels > limit {max_pixels}",
                )
            if min(width, height) < MIN_IMAGE_SIDE:
                raise AnnotationError(
                    Reason.IMAGE_TOO_SMALL,
                    f"{width}x{height}: under {MIN_IMAGE_SIDE} px on a side",
                )
            image.load()  # header alone is not enough: truncated files fail here
            phash = perceptual_hash(imagehash, image)
    except AnnotationError:
        raise
    except Image.DecompressionBombError as exc:
        raise AnnotationError(Reason.IMAGE_TOO_LARGE, str(exc)) from None
    except UnidentifiedImageError:
        raise AnnotationError(Reason.IMAGE_UNREADABLE, "not a recognised image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise AnnotationError(Reason.IMAGE_UNREADABLE, f"cannot decode: {exc}") from None
    return width, height, phash


def perceptual_hash(imagehash, image) -> int:
    """imagehash's 64-bit pHash as a signed int64 (what SQLite stores)."""
    bits = imagehash.phash(image).hash.flatten()
    value = int("".join("1" if b else "0" for b in bits), 2)
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass
class Candidate:
    """The files found under one name in one folder (data/ or data-seed/).

    Paths are plain strings: a listing makes one per file, and ``pathlib.Path`` costs about
    ten times more to build (seconds at 100k pairs, in every run).
    """

    name: str
    origin: str
    image: str | None = None
    label: str | None = None
    # Further files claiming the same name (x.png next to x.jpg): quarantined.
    conflicts: list[str] = field(default_factory=list)

    def files(self) -> list[Path]:
        return [Path(p) for p in (self.image, self.label) if p is not None]


@dataclass
class Rejection:
    name: str
    reason: str
    detail: str
    files: list[Path]
    origin: str = "data"


@dataclass(frozen=True)
class Checked:
    """A pair that passed every rule: what the catalogue stores about it."""

    name: str
    origin: str
    image: str
    label: str
    image_stat: str
    label_stat: str
    image_sha256: str
    label_sha256: str
    width: int
    height: int
    boxes: list
    phash: int
    arrived_ns: int

    @property
    def content_hash(self) -> str:
        """Identity of the annotation's content: changes when its image or label changes."""
        return sha256_text([self.image_sha256, self.label_sha256])


def stat_key(path: Path | str) -> str:
    """What says a file changed without reading it: inode, size and modification time."""
    st = os.stat(path, follow_symlinks=False)
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def validate_candidate(candidate: Candidate, rules: ValidationRules) -> Checked | Rejection:
    def reject(reason: Reason, detail: str) -> Rejection:
        return Rejection(candidate.name, reason, detail, candidate.files(), candidate.origin)

    if detail := unsafe_name_detail(candidate.name):
        return reject(Reason.UNSAFE_NAME, detail)
    if candidate.name.startswith("."):
        return reject(Reason.HIDDEN_NAME, "YOLO's loader skips names starting with '.'")
    if links := [p.name for p in candidate.files() if p.is_symlink()]:
        return reject(Reason.SYMLINK, f"{', '.join(links)}: a link, not a file in the root")
    if candidate.image is None:
        return reject(Reason.IMAGE_MISSING, f"no image for label {Path(candidate.label).name}")
    if candidate.label is None:
        return reject(Reason.LABEL_MISSING, f"no label for image {Path(candidate.image).name}")
    image, label = Path(candidate.image), Path(candidate.label)
    try:
        # Stat before reading: a file that changes while we read gets a new key next run.
        image_stat, label_stat = stat_key(image), stat_key(label)
        label_bytes = label.stat().st_size
        if label_bytes > rules.max_label_bytes:
            raise AnnotationError(
                Reason.LABEL_TOO_LARGE, f"{label_bytes} bytes > limit {rules.max_label_bytes}"
            )
        width, height, phash = inspect_image(image, rules.max_image_pixels)
        raw = label.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise AnnotationError(Reason.LABEL_SYNTAX, "not UTF-8 text") from None
        boxes = parse_label(text, rules.valid_ids)
        if len(boxes) > rules.max_boxes:
            raise AnnotationError(
                Reason.LABEL_TOO_LARGE, f"{len(boxes)} boxes > limit {rules.max_boxes}"
            )
        arrived_ns = image.stat().st_ctime_ns
    except AnnotationError as exc:
        return reject(exc.reason, exc.detail)
    except OSError as exc:  # vanished or unreadable while we looked
        return reject(Reason.IMAGE_UNREADABLE, f"cannot read: {exc}")
    return Checked(
        name=candidate.name,
        origin=candidate.origin,
        image=candidate.image,
        label=candidate.label,
        image_stat=image_stat,
        label_stat=label_stat,
        image_sha256=sha256_file(image),
        label_sha256=hashlib.sha256(raw).hexdigest(),
        width=width,
        height=height,
        boxes=[[b.class_id, b.cx, b.cy, b.w, b.h] for b in boxes],
        phash=phash,
        arrived_ns=arrived_ns,
    )
