"""The annotation platform's stream messages (AZAION_FORMAT.md, "Annotations"), decoded and checked.

``decode`` turns one AMQP message's msgpack body and its ``AnnotationStatus`` property into an
``AnnotationMessage`` (Created, Edited) or an ``AnnotationBulkMessage`` (Validated, Deleted),
or raises ``DeadLetter`` with the reason the message cannot be applied. ``encode_*`` build the
same messages, for the publisher that plays the platform in demos, tests and benchmarks.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any

import msgpack
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from azaion_pipeline.lib.dataset.annotations import unsafe_name_detail
from azaion_pipeline.lib.sample_data import format_label

STATUS_PROPERTY = "AnnotationStatus"
ANNOTATION_FIELDS = 11
TICKS_PER_MICROSECOND = 10  # .NET TimeSpan ticks are 100 ns


class AnnotationStatus(IntEnum):
    CREATED = 10
    EDITED = 20
    VALIDATED = 30
    DELETED = 40


class Role(IntEnum):
    OPERATOR = 10
    VALIDATOR = 20
    COMPANION_PC = 30
    ADMIN = 40
    API_ADMIN = 1000


# Azaion's handler writes these roles' annotations straight to data/, everyone else's to seed.
VALIDATOR_ROLES = frozenset({Role.VALIDATOR, Role.ADMIN, Role.API_ADMIN})


class Source(IntEnum):
    AI = 0
    MANUAL = 1


class DeadLetterReason(StrEnum):
    UNDECODABLE = "undecodable"
    WRONG_FIELDS = "wrong_fields"
    UNKNOWN_STATUS = "unknown_status"
    IMAGE_EMPTY = "image_empty"
    IMAGE_UNDECODABLE = "image_undecodable"
    UNSAFE_NAME = "unsafe_name"
    DETECTIONS_OUT_OF_RANGE = "detections_out_of_range"
    UNKNOWN_NAME = "unknown_name"
    EDIT_OF_MISSING = "edit_of_missing"


class DeadLetter(Exception):
    """A message that cannot be applied; the consumer files it and moves on."""

    def __init__(self, reason: DeadLetterReason, detail: str, name: str | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.name = name


def role_name(role: int) -> str:
    try:
        return Role(role).name.lower()
    except ValueError:
        return f"role_{role}"


def source_name(source: int) -> str:
    try:
        return Source(source).name
    except ValueError:
        return f"source_{source}"


def _normalised_key(key: str) -> str:
    return key.replace("_", "").lower()


class Detection(BaseModel):
    """Azaion's Detection DTO; ``x, y`` the box centre, all four normalised to 0-1."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    annotation_name: str | None = Field(default=None, alias="annotationname")
    cls: int = Field(ge=0)
    x: float
    y: float
    w: float
    h: float
    confidence: float = 1.0

    @classmethod
    def parse(cls, raw: Any) -> Detection:
        """Accepts snake_case and PascalCase keys (``cls``/``Cls``, ``annotation_name``/``AnnotationName``)."""
        if not isinstance(raw, dict):
            raise TypeError(f"a detection must be an object, got {type(raw).__name__}")
        return cls.model_validate({_normalised_key(str(k)): v for k, v in raw.items()})

    def in_range(self) -> bool:
        return all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in (self.x, self.y, self.w, self.h))


class AnnotationMessage(BaseModel):
    """Created / Edited: positional fields 0-10 of the platform's AnnotationMessage."""

    model_config = ConfigDict(frozen=True)

    created_date: datetime
    name: str
    original_media_name: str
    time_ticks: int
    image_extension: str
    detections: tuple[Detection, ...]
    image: bytes
    created_role: int
    created_email: str
    source: int
    status: AnnotationStatus

    @field_validator("created_date")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @property
    def time(self) -> timedelta:
        """Position of the frame in its media."""
        return timedelta(microseconds=self.time_ticks / TICKS_PER_MICROSECOND)

    @property
    def by_validator(self) -> bool:
        return self.created_role in VALIDATOR_ROLES

    def label_text(self) -> str:
        return format_label([(d.cls, d.x, d.y, d.w, d.h) for d in self.detections])


class AnnotationBulkMessage(BaseModel):
    """Validated / Deleted: field 0 names the annotations; later fields are ignored."""

    model_config = ConfigDict(frozen=True)

    names: tuple[str, ...]
    status: AnnotationStatus


Message = AnnotationMessage | AnnotationBulkMessage


def status_of(value: Any) -> AnnotationStatus:
    """The ``AnnotationStatus`` property: a number (10) or the enum's name ("Created")."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            value = int(text)
        elif text.upper() in AnnotationStatus.__members__:
            return AnnotationStatus[text.upper()]
    if isinstance(value, int) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            return AnnotationStatus(value)
    raise DeadLetter(DeadLetterReason.UNKNOWN_STATUS, f"AnnotationStatus property is {value!r}")


def _typed(fields: list, index: int, expected: type | tuple[type, ...], label: str) -> Any:
    value = fields[index]
    if not isinstance(value, expected) or isinstance(value, bool):
        raise DeadLetter(
            DeadLetterReason.WRONG_FIELDS,
            f"field {index} ({label}) is {type(value).__name__}, expected "
            + "/".join(
                t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,))
            ),
        )
    return value


def _check_name(name: str) -> None:
    problem = unsafe_name_detail(name)
    if problem:
        raise DeadLetter(DeadLetterReason.UNSAFE_NAME, f"{name!r}: {problem}", name=None)


def _check_extension(extension: str, name: str) -> str:
    cleaned = extension.lstrip(".").lower()
    if not (cleaned.isascii() and cleaned.isalnum() and 0 < len(cleaned) <= 5):
        raise DeadLetter(
            DeadLetterReason.UNSAFE_NAME, f"image extension {extension!r} is not safe", name=name
        )
    return cleaned


def _detections(raw: str, name: str) -> tuple[Detection, ...]:
    try:
        items = json.loads(raw) if raw.strip() else []
        if not isinstance(items, list):
            raise TypeError(f"detections must be a JSON list, got {type(items).__name__}")
        detections = tuple(Detection.parse(item) for item in items)
    except (ValueError, TypeError, ValidationError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DeadLetter(
            DeadLetterReason.WRONG_FIELDS, f"field 5 (detections): {detail}", name=name
        ) from None
    outside = [d for d in detections if not d.in_range()]
    if outside:
        first = outside[0]
        raise DeadLetter(
            DeadLetterReason.DETECTIONS_OUT_OF_RANGE,
            f"{len(outside)} of {len(detections)} boxes outside 0-1, first: "
            f"cls {first.cls} x {first.x} y {first.y} w {first.w} h {first.h}",
            name=name,
        )
    return detections


def _check_image(image: bytes, name: str) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(image)) as opened:
            opened.verify()  # headers and structure, without a full decode
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DeadLetter(
            DeadLetterReason.IMAGE_UNDECODABLE, f"{len(image)} bytes: {exc}", name=name
        ) from None


def _annotation_message(fields: list, status: AnnotationStatus) -> AnnotationMessage:
    if len(fields) != ANNOTATION_FIELDS:
        raise DeadLetter(
            DeadLetterReason.WRONG_FIELDS,
            f"{len(fields)} fields, an AnnotationMessage has {ANNOTATION_FIELDS}",
        )
    name = _typed(fields, 1, str, "name")
    _check_name(name)
    created_date = _typed(fields, 0, datetime, "createdDate")
    original_media_name = _typed(fields, 2, str, "originalMediaName")
    time_ticks = _typed(fields, 3, int, "time")
    extension = _check_extension(_typed(fields, 4, str, "imageExtension"), name)
    raw_detections = _typed(fields, 5, str, "detections")
    image = b"" if fields[6] is None else _typed(fields, 6, bytes, "image")
    created_role = _typed(fields, 7, int, "createdRole")
    created_email = _typed(fields, 8, str, "createdEmail")
    source = _typed(fields, 9, int, "source")
    _typed(fields, 10, int, "status")  # the property decides, as in Azaion's handler
    detections = _detections(raw_detections, name)
    if status is AnnotationStatus.CREATED and not image:
        raise DeadLetter(DeadLetterReason.IMAGE_EMPTY, "a Created message without image", name)
    if image:
        _check_image(image, name)
    return AnnotationMessage(
        created_date=created_date,
        name=name,
        original_media_name=original_media_name,
        time_ticks=time_ticks,
        image_extension=extension,
        detections=detections,
        image=image,
        created_role=created_role,
        created_email=created_email,
        source=source,
        status=status,
    )


def _bulk_message(fields: list, status: AnnotationStatus) -> AnnotationBulkMessage:
    if not fields:
        raise DeadLetter(DeadLetterReason.WRONG_FIELDS, "an empty AnnotationBulkMessage")
    names = _typed(fields, 0, list, "annotation names")
    if not all(isinstance(name, str) for name in names):
        raise DeadLetter(
            DeadLetterReason.WRONG_FIELDS, "field 0 (annotation names) holds non-strings"
        )
    for name in names:
        _check_name(name)
    return AnnotationBulkMessage(names=tuple(names), status=status)


def decode(body: bytes, status_property: Any) -> Message:
    """One message, checked; raises ``DeadLetter`` for anything that cannot be applied."""
    status = status_of(status_property)
    try:
        fields = msgpack.unpackb(body, timestamp=3, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises ValueError, TypeError (unhashable keys) ...
        raise DeadLetter(
            DeadLetterReason.UNDECODABLE, f"msgpack: {type(exc).__name__} {exc}"
        ) from None
    if not isinstance(fields, list):
        raise DeadLetter(
            DeadLetterReason.WRONG_FIELDS,
            f"body is a msgpack {type(fields).__name__}, not an array",
        )
    if status in (AnnotationStatus.CREATED, AnnotationStatus.EDITED):
        return _annotation_message(fields, status)
    return _bulk_message(fields, status)


def encode_annotation(
    *,
    name: str,
    image: bytes,
    label_boxes: list[tuple[int, float, float, float, float]],
    created_role: int,
    created_email: str,
    source: int = Source.MANUAL,
    status: AnnotationStatus = AnnotationStatus.CREATED,
    original_media_name: str = "",
    time_ticks: int = 0,
    image_extension: str = "jpg",
    created_date: datetime | None = None,
) -> bytes:
    """An AnnotationMessage body as the platform sends it (detections as a JSON string)."""
    detections = [
        {"annotation_name": name, "cls": c, "x": x, "y": y, "w": w, "h": h, "confidence": 1.0}
        for c, x, y, w, h in label_boxes
    ]
    return msgpack.packb(
        [
            msgpack.Timestamp.from_datetime(created_date or datetime.now(UTC)),
            name,
            original_media_name,
            time_ticks,
            image_extension,
            json.dumps(detections),
            image,
            created_role,
            created_email,
            source,
            int(status),
        ],
        use_bin_type=True,
    )


def encode_bulk(names: list[str]) -> bytes:
    return msgpack.packb([names], use_bin_type=True)
