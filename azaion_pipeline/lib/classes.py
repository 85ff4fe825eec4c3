"""Azaion classes: 17 base classes times three weather modes, trained with nc=80."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field, TypeAdapter

NUM_MODEL_CLASSES = 80
WEATHER_OFFSETS = {"Norm": 0, "Wint": 20, "Night": 40}


class AzaionClass(BaseModel):
    id: int = Field(alias="Id", ge=0, lt=20)
    name: str = Field(alias="Name", min_length=1)
    short_name: str = Field(alias="ShortName", min_length=1)
    color: str = Field(alias="Color", pattern=r"^#[0-9A-Fa-f]{6}$")


class ClassCatalog:
    def __init__(self, classes: list[AzaionClass]):
        ids = [c.id for c in classes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate class ids in classes.json: {sorted(ids)}")
        self.base = sorted(classes, key=lambda c: c.id)

    @classmethod
    def load(cls, path: Path | str) -> ClassCatalog:
        raw = json.loads(Path(path).read_text())
        return cls(TypeAdapter(list[AzaionClass]).validate_python(raw))

    def names(self) -> dict[int, str]:
        """Every usable class id (base id + weather offset) -> ``Name`` or ``Name(Wint)`` ..."""
        names = {}
        for weather, offset in WEATHER_OFFSETS.items():
            suffix = "" if offset == 0 else f"({weather})"
            for c in self.base:
                names[c.id + offset] = f"{c.name}{suffix}"
        return names

    def valid_ids(self) -> frozenset[int]:
        return frozenset(self.names())

    def model_names(self) -> dict[int, str]:
        """All nc=80 slots for data.yaml: real names, and ``Class-{id}`` for unused ones."""
        real = self.names()
        return {i: real.get(i, f"Class-{i}") for i in range(NUM_MODEL_CLASSES)}

    def color(self, class_id: int) -> str:
        return {c.id: c.color for c in self.base}[class_id % 20]
