"""Provenance sidecars: where each annotation came from, kept beside it for later stages.

Each annotation ``{folder}/images/{name}.{ext}`` + ``{folder}/labels/{name}.txt`` written by the
intake gets ``{folder}/provenance/{name}.json`` with the platform's fields (Azaion's names:
``originalMediaName``, ``time``, ``createdRole``, ``createdEmail``, ``source``, ``createdDate``)
and the stream offset of the last message applied to it (what makes replays harmless). The
sidecar moves with its pair (seed -> data -> data_deleted).

Later stages call ``read_provenance(image_or_label_path)``; e.g. the split groups frames of
one ``original_media_name`` so near-identical frames never straddle train and test.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

PROVENANCE = "provenance"


class Provenance(BaseModel):
    """One annotation's origin. Fields are None for annotations that predate the intake."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    name: str
    original_media_name: str | None = Field(default=None, alias="originalMediaName")
    time: timedelta | None = Field(default=None, description="position in the media")
    created_role: int | None = Field(default=None, alias="createdRole")
    created_email: str | None = Field(default=None, alias="createdEmail")
    source: int | None = None
    created_date: datetime | None = Field(default=None, alias="createdDate")
    image_extension: str | None = Field(default=None, alias="imageExtension")
    image_size: int | None = Field(default=None, alias="imageSize")
    status: int | None = Field(default=None, description="AnnotationStatus last applied")
    offset: int = Field(description="stream offset of the last message applied to it")

    def dumps(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True) + "\n"


def provenance_path(folder: Path, name: str) -> Path:
    """The sidecar of annotation ``name`` in an annotation folder (data/, data-seed/ ...)."""
    return folder / PROVENANCE / f"{name}.json"


def load_provenance(path: Path) -> Provenance | None:
    try:
        return Provenance.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None


def read_provenance(annotation_file: Path) -> Provenance | None:
    """The provenance of the annotation whose image or label is ``annotation_file``.

    ``annotation_file`` is ``{folder}/images/{name}.{ext}`` or ``{folder}/labels/{name}.txt``;
    None when the annotation did not come through the stream.
    """
    annotation_file = Path(annotation_file)
    return load_provenance(provenance_path(annotation_file.parent.parent, annotation_file.stem))
