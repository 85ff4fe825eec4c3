"""Sealed batches: what the consumer made durable, one small manifest each, plus an index.

The consumer seals a batch once its files are flushed: it writes ``batches/{id}.names.json``
(the annotation names the batch's messages named: what the dataset stage reads instead of
listing the folders) and ``batches/{id}.json`` (counts only), then appends ``{id}`` to
``batches/index`` (all fsynced), and only after that stores the stream offset. A sensor reads the index from a byte position (its cursor), so a look costs what is
new, however many batches exist. A replay after a crash may seal an overlapping batch again;
its messages then count as ``skipped`` and its run is as harmless as a repeated one.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from azaion_pipeline.lib.intake.messages import (
    AnnotationMessage,
    Message,
    role_name,
    source_name,
)
from azaion_pipeline.lib.intake.store import Effect
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.records import Record

BATCHES = "batches"
INDEX = "index"


class BatchManifest(Record):
    """One sealed batch. Counts only: nothing personal (no e-mails, no names)."""

    batch_id: str
    stream: str
    consumer: str
    first_offset: int
    last_offset: int
    sealed_at: datetime
    consumed: int
    written: int
    moved: int
    dead_lettered: int
    skipped: int
    by_status: dict[str, int]
    by_role: dict[str, int]
    by_source: dict[str, int]


@dataclass
class BatchTally:
    """The open batch: offsets and counts of what has been applied since the last seal."""

    first_offset: int | None = None
    last_offset: int | None = None
    effects: Counter = field(default_factory=Counter)
    by_status: Counter = field(default_factory=Counter)
    by_role: Counter = field(default_factory=Counter)
    by_source: Counter = field(default_factory=Counter)
    # Every annotation a message named, applied or skipped as a replay (a replay's first
    # application may never have been sealed); ordered, each once.
    names: dict[str, None] = field(default_factory=dict)

    @property
    def consumed(self) -> int:
        return self.effects["consumed"]

    def count(
        self, offset: int, message: Message | None, effect: Effect, dead_lettered: bool
    ) -> None:
        if self.first_offset is None:
            self.first_offset = offset
        self.last_offset = offset
        self.effects["consumed"] += 1
        self.effects[effect] += 1
        if dead_lettered and effect is not Effect.DEAD_LETTERED:
            self.effects[Effect.DEAD_LETTERED] += 1  # a bulk message partly applied
        if isinstance(message, AnnotationMessage):
            self.names[message.name] = None
        elif message is not None:
            self.names.update(dict.fromkeys(message.names))
        if message is not None:
            self.by_status[message.status.name.lower()] += 1
        if isinstance(message, AnnotationMessage) and effect is Effect.WRITTEN:
            self.by_role[role_name(message.created_role)] += 1
            self.by_source[source_name(message.source)] += 1

    def manifest(self, stream: str, consumer: str) -> BatchManifest:
        assert self.first_offset is not None and self.last_offset is not None
        return BatchManifest(
            batch_id=f"{self.first_offset}-{self.last_offset}",
            stream=stream,
            consumer=consumer,
            first_offset=self.first_offset,
            last_offset=self.last_offset,
            sealed_at=datetime.now(UTC),
            consumed=self.consumed,
            written=self.effects[Effect.WRITTEN],
            moved=self.effects[Effect.MOVED],
            dead_lettered=self.effects[Effect.DEAD_LETTERED],
            skipped=self.effects[Effect.SKIPPED],
            by_status=dict(self.by_status),
            by_role=dict(self.by_role),
            by_source=dict(self.by_source),
        )


def _write_durably(path: Path, data: bytes, append: bool = False) -> None:
    if append:
        with open(path, "ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class BatchLog:
    def __init__(self, layout: AzaionLayout):
        self.folder = layout.intake / BATCHES
        self.index = self.folder / INDEX

    def prepare(self) -> None:
        """Create the folder; cut a torn last index line (a crash mid-append) so appends stay whole."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.index.exists():
            data = self.index.read_bytes()
            whole = data[: data.rfind(b"\n") + 1]
            if len(whole) != len(data):
                os.truncate(self.index, len(whole))

    def seal(self, manifest: BatchManifest, names: Iterable[str]) -> None:
        _write_durably(self.names_path(manifest.batch_id), json.dumps(list(names)).encode())
        _write_durably(self.manifest_path(manifest.batch_id), manifest.model_dump_json().encode())
        _write_durably(self.index, f"{manifest.batch_id}\n".encode(), append=True)

    def manifest_path(self, batch_id: str) -> Path:
        return self.folder / f"{batch_id}.json"

    def names_path(self, batch_id: str) -> Path:
        return self.folder / f"{batch_id}.names.json"

    def names(self, batch_id: str) -> list[str]:
        """The annotation names a sealed batch's messages named."""
        return json.loads(self.names_path(batch_id).read_text())

    def load(self, batch_id: str) -> BatchManifest:
        return BatchManifest.model_validate_json(self.manifest_path(batch_id).read_text())

    def sealed_since(self, position: int) -> tuple[list[str], int]:
        """Batch ids sealed after byte ``position`` of the index, and the new position."""
        if not self.index.exists():
            return [], position
        with open(self.index, "rb") as handle:
            handle.seek(position)
            data = handle.read()
        whole = data[: data.rfind(b"\n") + 1]
        return whole.decode().split(), position + len(whole)
