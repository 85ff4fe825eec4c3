"""The annotation landing zone: what arrived since the last look, and is it complete yet.

Two stores sit behind one interface (``LandingZone.changes``): the local Azaion tree
(``data/``, ``data-seed/``, ``data_deleted/``) and an S3 prefix laid out the same way.
Each file gets a *position*, a string that sorts in arrival order, so a cursor is just
the last position taken per zone (a high-water mark) and a look costs what is new:

- local: ``"{ctime_ns:020d} {area}/{label file}"``. Labels, because every annotation has one and
  an edit rewrites it. ctime, not mtime: a rename (Azaion's validation seed -> data,
  deletion -> data_deleted) keeps mtime but sets ctime, and ctime cannot be set backwards
  from user space, so whatever shows up later sorts after the mark. POSIX has no "changed
  since" query, so a look still costs one ``stat`` per label (relative to an open directory
  descriptor), but no reads and no Python work per old file beyond one int compare.
- S3: the object key. Uploaders write each batch under a time-sortable folder, areas inside
  (``{prefix}/{YYYYmmddTHHMMSSZ}-{batch}/{area}/{images,labels}/{name}.{ext}``), so one
  ``ListObjectsV2(StartAfter=mark)`` returns only the new keys, whatever already exists.
  Keys under an older stamp that appear after a newer one was taken are not seen: stamp
  batches when the upload starts, from a synced clock.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

from azaion_pipeline.lib.dataset.annotations import IMAGE_SUFFIXES
from azaion_pipeline.lib.hashing import sha256_text
from azaion_pipeline.lib.layout import IMAGES, LABELS, AzaionLayout

DATA = "data"
SEED = "data-seed"
DELETED = "data_deleted"
AREAS = (DATA, SEED, DELETED)
ANNOTATION_SUFFIXES = frozenset({".txt", *IMAGE_SUFFIXES})
# A file whose content is this much older than its arrival was moved in, not written.
MOVED_IN_TOLERANCE_NS = 1_000_000_000


@dataclass(frozen=True)
class LandedFile:
    area: str
    position: str
    name: str  # the annotation name: the file's stem, shared by its image and label
    landed_ns: int  # when it arrived or last changed (ctime / LastModified)
    moved_in: bool = False  # content older than its arrival: renamed into place


class LandingZone(Protocol):
    uri: str

    def changes(self, after: str | None) -> list[LandedFile]:
        """Files whose position sorts after ``after`` (all files when None), in position order."""
        ...


class LocalLandingZone:
    def __init__(self, layout: AzaionLayout):
        self.layout = layout
        self.uri = layout.root.as_uri()
        self._areas = {DATA: layout.data, SEED: layout.data_seed, DELETED: layout.data_deleted}

    def changes(self, after: str | None) -> list[LandedFile]:
        # Positions start with the zero-padded ctime: an old entry is dropped on one int compare.
        floor_ns = int(after.split(" ", 1)[0]) if after else -1
        landed = [file for area in AREAS for file in self._area_changes(area, after, floor_ns)]
        return sorted(landed, key=lambda f: f.position)

    def _area_changes(self, area: str, after: str | None, floor_ns: int) -> Iterator[LandedFile]:
        # Labels drive: every annotation has one and in-place edits rewrite it.
        images, labels = AzaionLayout.images_and_labels(self._areas[area])
        with _opened(labels) as labels_fd, _opened(images) as images_fd:
            if labels_fd is None:
                return
            for file in os.listdir(labels_fd):
                if not file.endswith(".txt"):
                    continue
                try:
                    stat = os.stat(file, dir_fd=labels_fd)
                except FileNotFoundError:  # moved on mid-look; its new area reports it
                    continue
                if stat.st_ctime_ns < floor_ns:
                    continue
                position = f"{stat.st_ctime_ns:020d} {area}/{file}"
                if after is not None and position <= after:
                    continue
                name = file[: -len(".txt")]
                # The image may still be copying after its label: count it in the quiet period.
                image_ns = _image_ctime_ns(images_fd, name)
                yield LandedFile(
                    area=area,
                    position=position,
                    name=name,
                    landed_ns=max(stat.st_ctime_ns, image_ns),
                    moved_in=stat.st_ctime_ns - stat.st_mtime_ns > MOVED_IN_TOLERANCE_NS,
                )


@contextmanager
def _opened(folder: Path) -> Iterator[int | None]:
    """A directory descriptor (stat relative to it skips path resolution), None if absent."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def _image_ctime_ns(images_fd: int | None, name: str) -> int:
    if images_fd is None:
        return 0
    for suffix in IMAGE_SUFFIXES:
        try:
            return os.stat(name + suffix, dir_fd=images_fd).st_ctime_ns
        except FileNotFoundError:
            continue
    return 0


class S3LandingZone:
    """``s3://bucket/prefix`` holding ``{batch}/{area}/...`` keys that sort in arrival order."""

    def __init__(self, client, bucket: str, prefix: str = ""):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")

    @classmethod
    def from_uri(cls, client, uri: str) -> S3LandingZone:
        if not uri.startswith("s3://"):
            raise ValueError(f"landing S3 URI must look like s3://bucket/prefix, got {uri!r}")
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        return cls(client, bucket, prefix)

    def changes(self, after: str | None) -> list[LandedFile]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket,
            Prefix=f"{self.prefix}/" if self.prefix else "",
            StartAfter=after or "",
        )
        landed = []
        for page in pages:
            for item in page.get("Contents", []):
                path = PurePosixPath(item["Key"])
                relative = path.relative_to(self.prefix) if self.prefix else path
                # {batch}/{area}/{kind}/{file}: anything else under the prefix is not ours.
                if (
                    len(relative.parts) != 4
                    or relative.parts[1] not in AREAS
                    or relative.parts[2] not in (IMAGES, LABELS)
                ):
                    continue
                if path.suffix.lower() not in ANNOTATION_SUFFIXES:
                    continue
                landed.append(
                    LandedFile(
                        area=relative.parts[1],
                        position=item["Key"],
                        name=path.stem,
                        landed_ns=int(item["LastModified"].timestamp() * 1e9),
                    )
                )
        return landed


def land_locally(
    zone: S3LandingZone, after: str | None, until: str, layout: AzaionLayout
) -> dict[str, int]:
    """Copy the S3 batch ``(after, until]`` into the local Azaion tree, where ingestion reads.

    An annotation changing areas (validation seed -> data, deletion -> data_deleted) has its
    local copy moved, as Azaion's own scripts do, so it is never in two areas and nothing is
    deleted. Each file appears by an atomic rename: the local look never sees half a file.
    """
    areas = {DATA: layout.data, SEED: layout.data_seed, DELETED: layout.data_deleted}
    copied = dict.fromkeys(AREAS, 0)
    for landed in zone.changes(after):
        if landed.position > until:
            break
        key = PurePosixPath(landed.position)
        kind, file = key.parts[-2], key.name
        target = areas[landed.area] / kind / file
        target.parent.mkdir(parents=True, exist_ok=True)
        for area, folder in areas.items():
            if area != landed.area and (folder / kind / file).exists():
                os.replace(folder / kind / file, target)
        staging = target.with_name(f".{file}.landing")
        zone.client.download_file(zone.bucket, landed.position, str(staging))
        os.replace(staging, target)
        copied[landed.area] += 1
    return copied


@dataclass(frozen=True)
class Batch:
    """Everything that landed in one zone since its mark, once the zone went quiet."""

    zone: str
    files: tuple[LandedFile, ...]
    after: str | None = None  # the mark the batch starts after; it ends at its last position

    @property
    def until(self) -> str:
        return self.files[-1].position

    @property
    def id(self) -> str:
        # Same files at the same positions -> same id -> same run key: a repeated tick is harmless.
        return sha256_text([self.zone, *(f"{f.area}:{f.position}" for f in self.files)])[:16]

    def names(self, area: str, moved_in: bool | None = None) -> set[str]:
        return {
            f.name
            for f in self.files
            if f.area == area and (moved_in is None or f.moved_in == moved_in)
        }

    @property
    def counts(self) -> dict[str, int]:
        return {
            "new": len(self.names(DATA, moved_in=False)),
            "validated": len(self.names(DATA, moved_in=True)),
            "deleted": len(self.names(DELETED)),
            "seeded": len(self.names(SEED)),
        }

    @property
    def needs_ingest(self) -> bool:
        """Only data/ trains: new or validated annotations there, or deletions, change the dataset."""
        counts = self.counts
        return bool(counts["new"] or counts["validated"] or counts["deleted"])


@dataclass(frozen=True)
class ZoneLook:
    """One look at a zone: a batch ready to take, one still landing, or nothing."""

    zone: str
    mark: str | None  # the mark to store after this look
    batch: Batch | None = None
    waiting: tuple[LandedFile, ...] = ()
    quiet_for_s: float = 0.0


def look(
    zone: LandingZone, mark: str | None, quiet_seconds: float, now_ns: int | None = None
) -> ZoneLook:
    """What landed in ``zone`` after ``mark``; a batch only once nothing landed for ``quiet_seconds``.

    While files are still landing the mark stays where it was, so the next look sees the
    whole batch again rather than half of it.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    files = tuple(zone.changes(mark))
    if not files:
        return ZoneLook(zone.uri, mark)
    quiet_for_s = (now_ns - max(f.landed_ns for f in files)) / 1e9
    if quiet_for_s < quiet_seconds:
        return ZoneLook(zone.uri, mark, waiting=files, quiet_for_s=quiet_for_s)
    batch = Batch(zone.uri, files, after=mark)
    return ZoneLook(zone.uri, batch.until, batch, quiet_for_s=quiet_for_s)


@dataclass
class LandingCursor:
    """The sensor cursor: per zone URI, the last position taken."""

    marks: dict[str, str | None] = field(default_factory=dict)

    VERSION = 2

    @classmethod
    def parse(cls, text: str | None) -> LandingCursor:
        if not text:
            return cls()
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"landing cursor is not JSON: {text[:80]!r}") from exc
        if payload.get("version") != cls.VERSION:
            raise ValueError(f"landing cursor version {payload.get('version')!r} is not supported")
        return cls(marks=payload["marks"])

    def for_zone(self, uri: str) -> str | None:
        return self.marks.get(uri)

    def advanced(self, looks: Iterable[ZoneLook]) -> LandingCursor:
        return LandingCursor(marks={**self.marks, **{z.zone: z.mark for z in looks}})

    def dumps(self) -> str:
        return json.dumps({"version": self.VERSION, "marks": self.marks}, sort_keys=True)
