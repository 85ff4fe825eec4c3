"""Annotations: YOLO label parsing and validation of image/label pairs.

Every problem is a ``Rejection`` with one of ``Reason``; the caller quarantines it.
Nothing here raises on bad data, so one bad file never stops a run.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path

from azaion_pipeline.lib.files import write_atomic
from azaion_pipeline.lib.hashing import sha256_file, sha256_text
from azaion_pipeline.lib.layout import IMAGES, LABELS
from azaion_pipeline.lib.parallel import map_in_processes
from azaion_pipeline.lib.records import Record

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
LABEL_SUFFIX = ".txt"
MAX_NAME_BYTES = 255
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000


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
    # Two images share one name (e.g. x.jpg and x.png, or x in data/ and in data-seed/).
    NAME_CONFLICT = "name_conflict"

    @staticmethod
    def duplicate_of(name: str) -> str:
        return f"duplicate_of:{name}"


class AnnotationSet(Record):
    """raw_annotations' output: the valid annotations (listed in ``manifest``) and the tally."""

    version: str
    manifest: Path
    valid: int
    quarantined: int
    duplicates: int
    quarantined_by_reason: dict[str, int]
    quarantine_failures: int
    reasons_file: Path
    boxes_per_class: dict[int, int]
    validated_now: int


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


def inspect_image(path: Path, max_pixels: int) -> tuple[int, int]:
    """``(width, height)`` of a fully decodable image within the pixel limit."""
    from PIL import Image, UnidentifiedImageError

    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise AnnotationError(Reason.IMAGE_UNREADABLE, f"unsupported image type {path.suffix!r}")
    if path.stat().st_size == 0:
        raise AnnotationError(Reason.IMAGE_UNREADABLE, "zero bytes")
    with warnings.catch_warnings():
        # Our own pixel limit applies first; Pillow's bomb warning would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise AnnotationError(
                        Reason.IMAGE_TOO_LARGE,
                        f"{width}x{height} = {width * height} pixels > limit {max_pixels}",
                    )
                image.load()  # header alone is not enough: truncated files fail here
        except AnnotationError:
            raise
        except Image.DecompressionBombError as exc:
            raise AnnotationError(Reason.IMAGE_TOO_LARGE, str(exc)) from None
        except UnidentifiedImageError:
            raise AnnotationError(Reason.IMAGE_UNREADABLE, "not a recognised image") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise AnnotationError(Reason.IMAGE_UNREADABLE, f"cannot decode: {exc}") from None
    return width, height


@dataclass
class Candidate:
    """The files found under one name in one folder (data/ or data-seed/)."""

    name: str
    origin: str
    image: Path | None = None
    label: Path | None = None
    # Further files claiming the same name (x.png next to x.jpg): quarantined.
    conflicts: list[Path] = field(default_factory=list)

    def files(self) -> list[Path]:
        return [p for p in (self.image, self.label) if p is not None]


@dataclass
class ValidAnnotation:
    name: str
    origin: str
    image: str
    label: str
    image_sha256: str
    label_sha256: str
    width: int
    height: int
    boxes: list[list[float]]

    @property
    def content_hash(self) -> str:
        """Identity of the annotation's content: changes when its image or label changes."""
        return sha256_text([self.image_sha256, self.label_sha256])

    def to_json(self) -> dict:
        return {**asdict(self), "content_hash": self.content_hash}


@dataclass
class Rejection:
    name: str
    reason: str
    detail: str
    files: list[Path]
    origin: str = "data"


def find_candidates(folder: Path, origin: str) -> tuple[list[Candidate], list[Rejection]]:
    """Group ``folder/images`` and ``folder/labels`` by file stem."""
    by_name: dict[str, Candidate] = {}
    rejections = []

    def files(sub: str) -> list[Path]:
        directory = folder / sub
        return sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []

    for image in files(IMAGES):
        candidate = by_name.setdefault(image.stem, Candidate(image.stem, origin))
        if candidate.image is None:
            candidate.image = image
        else:
            candidate.conflicts.append(image)
    for label in files(LABELS):
        if label.suffix != LABEL_SUFFIX:
            rejections.append(
                Rejection(
                    label.name, Reason.LABEL_SYNTAX, "label files end in .txt", [label], origin
                )
            )
            continue
        by_name.setdefault(label.stem, Candidate(label.stem, origin)).label = label
    return [by_name[name] for name in sorted(by_name)], rejections


def validate_candidate(
    candidate: Candidate, valid_ids: frozenset[int], max_pixels: int
) -> ValidAnnotation | Rejection:
    def reject(reason: Reason, detail: str) -> Rejection:
        return Rejection(candidate.name, reason, detail, candidate.files(), candidate.origin)

    if detail := unsafe_name_detail(candidate.name):
        return reject(Reason.UNSAFE_NAME, detail)
    if candidate.image is None:
        return reject(Reason.IMAGE_MISSING, f"no image for label {candidate.label.name}")
    if candidate.label is None:
        return reject(Reason.LABEL_MISSING, f"no label for image {candidate.image.name}")
    try:
        width, height = inspect_image(candidate.image, max_pixels)
        try:
            text = candidate.label.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise AnnotationError(Reason.LABEL_SYNTAX, "not UTF-8 text") from None
        boxes = parse_label(text, valid_ids)
    except AnnotationError as exc:
        return reject(exc.reason, exc.detail)
    except OSError as exc:  # vanished or unreadable while we looked
        return reject(Reason.IMAGE_UNREADABLE, f"cannot read: {exc}")
    return ValidAnnotation(
        name=candidate.name,
        origin=candidate.origin,
        image=str(candidate.image),
        label=str(candidate.label),
        image_sha256=sha256_file(candidate.image),
        label_sha256=sha256_file(candidate.label),
        width=width,
        height=height,
        boxes=[[b.class_id, b.cx, b.cy, b.w, b.h] for b in boxes],
    )


@dataclass
class Collection:
    valid: list[ValidAnnotation]
    rejected: list[Rejection]
    duplicates: int

    @property
    def version(self) -> str:
        return sha256_text(f"{a.name}:{a.content_hash}" for a in self.valid)

    def class_counts(self) -> Counter[int]:
        return Counter(int(box[0]) for a in self.valid for box in a.boxes)


class ValidationCache:
    """Earlier verdicts for unchanged files, so a run decodes and hashes only what is new.

    A pair counts as unchanged when both files keep their path, inode, size and mtime.
    The rules (class ids, pixel limit) are part of the key: new rules start afresh.
    """

    def __init__(self, path: Path, valid_ids: frozenset[int], max_pixels: int):
        self.path = path
        self.rules = sha256_text([json.dumps(sorted(valid_ids)), str(max_pixels)])
        stored = json.loads(path.read_text()) if path.exists() else {}
        self.entries: dict[str, dict] = (
            stored.get("entries", {}) if stored.get("rules") == self.rules else {}
        )
        self.hits = 0

    @staticmethod
    def _stamp(path: Path) -> list[int]:
        stat = path.stat()
        return [stat.st_ino, stat.st_size, stat.st_mtime_ns]

    def _stamps(self, candidate: Candidate) -> list:
        return [str(candidate.image), self._stamp(candidate.image), self._stamp(candidate.label)]

    def lookup(self, candidate: Candidate) -> ValidAnnotation | None:
        entry = self.entries.get(candidate.name)
        if entry is None or candidate.image is None or candidate.label is None:
            return None
        try:
            if entry["stamps"] != self._stamps(candidate):
                return None
        except OSError:
            return None
        self.hits += 1
        return ValidAnnotation(**entry["annotation"])

    def save(self, valid: list[ValidAnnotation]) -> None:
        entries = {}
        for annotation in valid:
            candidate = Candidate(
                annotation.name, annotation.origin, Path(annotation.image), Path(annotation.label)
            )
            entries[annotation.name] = {
                "stamps": self._stamps(candidate),
                "annotation": asdict(annotation),
            }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps({"rules": self.rules, "entries": entries}).encode())


def collect_annotations(
    sources: list[tuple[Path, str]],
    valid_ids: frozenset[int],
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    workers: int = 0,
    on_progress=None,
    cache: ValidationCache | None = None,
) -> Collection:
    """Validate every pair under each ``(folder, origin)``; earlier folders win name clashes.

    Returns the valid annotations sorted by name and every rejection (bad pairs, name
    conflicts, byte-identical duplicates); moving rejected files is the caller's job.
    Pairs that ``cache`` vouches for are not decoded or hashed again.
    """
    candidates: list[Candidate] = []
    rejected: list[Rejection] = []
    taken: set[str] = set()
    for folder, origin in sources:
        found, bad_files = find_candidates(folder, origin)
        rejected.extend(bad_files)
        for candidate in found:
            if candidate.name in taken:
                rejected.append(
                    Rejection(
                        candidate.name,
                        Reason.NAME_CONFLICT,
                        f"name already used by an annotation in an earlier folder; this one is in {origin}",
                        candidate.files(),
                        origin,
                    )
                )
                continue
            taken.add(candidate.name)
            candidates.append(candidate)
            for extra in candidate.conflicts:
                rejected.append(
                    Rejection(
                        candidate.name,
                        Reason.NAME_CONFLICT,
                        f"{extra.name} shares its name with {candidate.image.name}",
                        [extra],
                        origin,
                    )
                )

    valid = []
    unknown = []
    for candidate in candidates:
        known = cache.lookup(candidate) if cache and not candidate.conflicts else None
        (valid.append(known) if known else unknown.append(candidate))
    check = partial(validate_candidate, valid_ids=valid_ids, max_pixels=max_pixels)
    for outcome in map_in_processes(check, unknown, workers, on_progress):
        (rejected if isinstance(outcome, Rejection) else valid).append(outcome)

    # Byte-identical images: keep the first name in order, quarantine the rest.
    kept_by_hash: dict[str, str] = {}
    unique = []
    duplicates = 0
    for annotation in sorted(valid, key=lambda a: a.name):
        kept = kept_by_hash.setdefault(annotation.image_sha256, annotation.name)
        if kept == annotation.name:
            unique.append(annotation)
            continue
        duplicates += 1
        rejected.append(
            Rejection(
                annotation.name,
                Reason.duplicate_of(kept),
                f"image is byte-identical to {kept}",
                [Path(annotation.image), Path(annotation.label)],
                annotation.origin,
            )
        )
    return Collection(valid=unique, rejected=rejected, duplicates=duplicates)
