"""Where an annotation came from: the stream's ``originalMediaName`` and frame ``time``.

The intake stores it beside each annotation as ``{folder}/provenance/{name}.json``
(``{"originalMediaName": ..., "time": ...}``); annotations without one (seed files, old
roots) have no provenance. This is the one reader; everything else asks it.
"""

from __future__ import annotations

import json
from pathlib import Path

PROVENANCE = "provenance"


def provenance_path(folder: Path, name: str) -> Path:
    return folder / PROVENANCE / f"{name}.json"


def _field(folder: Path, name: str, key: str) -> str | None:
    try:
        record = json.loads(provenance_path(folder, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = record.get(key) if isinstance(record, dict) else None
    return value if isinstance(value, str) and value else None


def read_media_name(folder: Path, name: str) -> str | None:
    """The media (video or photo) ``name`` was taken from, or None when unknown/unreadable."""
    return _field(folder, name, "originalMediaName")


def read_image_extension(folder: Path, name: str) -> str | None:
    """The extension the intake wrote ``name``'s image with (``jpg``), when it wrote one."""
    return _field(folder, name, "imageExtension")
