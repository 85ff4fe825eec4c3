"""What one asset hands the next: a small typed record, stored as JSON beside the data.

Each stage defines its record (a ``Record`` subclass) in ``lib/`` next to the code that
produces it. Records hold pointers (paths, object keys, hashes), counts, the parameters
downstream needs and lineage (dataset and model versions), never large files.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    """Base of every asset output record: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def record_type_name(record: Record) -> str:
    cls = type(record)
    return f"{cls.__module__}:{cls.__qualname__}"


def dump_record(record: Record) -> str:
    """The envelope stored on disk: the record's type (so it loads without annotations) + fields."""
    envelope = {"type": record_type_name(record), "record": record.model_dump(mode="json")}
    return json.dumps(envelope, sort_keys=True, indent=1)


def load_record(text: str, expected: type[Record] | None = None) -> Record:
    envelope: dict[str, Any] = json.loads(text)
    module_name, _, qualname = envelope["type"].partition(":")
    cls: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    if not (isinstance(cls, type) and issubclass(cls, Record)):
        raise TypeError(f"{envelope['type']} is not a Record type")
    if expected is not None and not issubclass(cls, expected):
        raise TypeError(f"stored record is a {cls.__name__}, expected {expected.__name__}")
    return cls.model_validate(envelope["record"])
