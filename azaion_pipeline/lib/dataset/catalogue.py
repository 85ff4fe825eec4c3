"""The annotation catalogue: one SQLite file that every dataset run updates by delta.

It holds what used to be rebuilt in full on every run (validation cache, raw and augmented
manifests, augmentation state): each accepted annotation with its files' stat keys, hashes,
boxes and perceptual hash; the split each name was given (never deleted, never changed);
every augmented output with its size and label text; and every dataset version built.

WAL mode: readers (checks, the UI) never block the run that writes, and a run killed
mid-way leaves the last committed state. Each run's changes commit in batches, so a
SIGKILL loses at most the uncommitted tail, which the next run simply redoes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from azaion_pipeline.lib.dataset.annotations import Checked
from azaion_pipeline.lib.hashing import sha256_text
from azaion_pipeline.lib.layout import AzaionLayout

CATALOGUE_FILE = "catalogue.sqlite"
# The split lists' running sums are kept modulo this (a multiset hash: order-free, and an
# entry added then removed leaves no trace).
LIST_SUM_MODULUS = 1 << 256
EXCLUDED = "excluded"
# meta key: the pHash distance the last ingest grouped splits at (what the check uses).
NEAR_DISTANCE = "near_duplicate_distance"
# meta keys: the catalogue run through which splits were assigned / a settings key augmented.
ASSIGNED_THROUGH = "assigned_through_run"
AUGMENTED_THROUGH = "augmented_through_run"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS annotations (
    name TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    image TEXT NOT NULL,
    label TEXT NOT NULL,
    image_stat TEXT NOT NULL,
    label_stat TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    label_sha256 TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    boxes TEXT NOT NULL,
    phash INTEGER NOT NULL,
    media_name TEXT,
    accepted_run INTEGER NOT NULL,
    arrived_ns INTEGER NOT NULL,
    rules TEXT NOT NULL,
    changed_run INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS annotations_image ON annotations (image_sha256);
CREATE INDEX IF NOT EXISTS annotations_media ON annotations (media_name);
CREATE TABLE IF NOT EXISTS splits (
    name TEXT PRIMARY KEY,
    split TEXT NOT NULL,
    reason TEXT NOT NULL,
    assigned_run INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS splits_run ON splits (assigned_run);
CREATE INDEX IF NOT EXISTS splits_split ON splits (split);
CREATE TABLE IF NOT EXISTS outputs (
    settings_key TEXT NOT NULL,
    source TEXT NOT NULL,
    variant INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    image TEXT NOT NULL,
    label TEXT NOT NULL,
    image_size INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    label_text TEXT NOT NULL,
    augmented_run INTEGER NOT NULL,
    PRIMARY KEY (settings_key, source, variant)
);
CREATE INDEX IF NOT EXISTS outputs_run ON outputs (augmented_run);
CREATE INDEX IF NOT EXISTS outputs_image ON outputs (settings_key, image);
CREATE TABLE IF NOT EXISTS list_sums (
    settings_key TEXT NOT NULL,
    split TEXT NOT NULL,
    total TEXT NOT NULL,
    entries INTEGER NOT NULL,
    PRIMARY KEY (settings_key, split)
);
CREATE TABLE IF NOT EXISTS class_counts (class_id INTEGER PRIMARY KEY, boxes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    settings_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    train INTEGER NOT NULL,
    valid INTEGER NOT NULL,
    test INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Accepted(Checked):
    """One annotation as the catalogue holds it: the checked pair, plus where it came from
    and when it was accepted."""

    media_name: str | None = None
    accepted_run: int = 0
    rules: str = ""  # the validation rules it passed (new rules validate it again)


class Newcomer(NamedTuple):
    """An annotation waiting for its split."""

    row: int  # its rowid (what ``perceptual_hashes`` returns beside each hash)
    name: str
    phash: int
    media_name: str | None


@dataclass(frozen=True)
class Output:
    """One augmented file pair in the content-addressed store (variant 0 is the original)."""

    source: str
    variant: int
    content_hash: str
    image: str  # file names inside the store's images/ and labels/
    label: str
    image_size: int
    width: int
    height: int
    label_text: str


def list_line(split: str, image_file: str) -> str:
    """One line of ``{split}.txt``: relative to the version folder, as ultralytics reads it."""
    return f"./{split}/images/{image_file}"


def in_split_list(split: str, variant: int) -> bool:
    """valid and test take originals only: a model is judged on real images."""
    return split == "train" or (split in ("valid", "test") and variant == 0)


def _line_value(line: str) -> int:
    return int(sha256_text([line]), 16)


def catalogue_path(layout: AzaionLayout) -> Path:
    return layout.root / "catalogue" / CATALOGUE_FILE


def restore_catalogue(snapshot: Path, path: Path) -> None:
    """Make the snapshot the catalogue at ``path`` (no run may hold it open): its WAL goes
    with the old file, the snapshot itself stays."""
    partial = path.with_name(f".{path.name}.restoring")
    shutil.copyfile(snapshot, partial)
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    os.replace(partial, path)


class Catalogue:
    """The dataset stage's state. Open one per run; ``with Catalogue(path) as c:`` closes it."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed transaction survives a process kill (only an
        # OS crash may lose the last ones), at a fraction of FULL's fsyncs.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(annotations)")}
        if "changed_run" not in columns:  # a catalogue from before: all rows count as run 0
            self.db.execute(
                "ALTER TABLE annotations ADD COLUMN changed_run INTEGER NOT NULL DEFAULT 0"
            )
        self.db.execute(
            "CREATE INDEX IF NOT EXISTS annotations_changed ON annotations (changed_run)"
        )

    @classmethod
    def of(cls, layout: AzaionLayout) -> Catalogue:
        return cls(catalogue_path(layout))

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def snapshot(self, target: Path) -> None:
        """A consistent, compact copy of the whole catalogue at ``target`` (``VACUUM INTO``
        reads one transaction's view; written beside and renamed, so a file there is whole)."""
        partial = target.with_name(f".{target.name}.partial")
        partial.unlink(missing_ok=True)
        self.db.execute("VACUUM INTO ?", (str(partial),))
        os.replace(partial, target)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # meta

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def current_run(self) -> int:
        return int(self.get_meta("run", "0"))

    def next_run(self) -> int:
        """A new run number: "accepted earlier" and "assigned earlier" compare these."""
        with self.transaction():
            run = int(self.get_meta("run", "0")) + 1
            self.set_meta("run", str(run))
        return run

    # annotations

    def stat_keys(
        self, names: Iterable[str] | None = None
    ) -> dict[str, tuple[str, str, str, str, str]]:
        """name -> (image path, label path, image stat key, label stat key, rules key), of
        every annotation or of those ``names`` the catalogue holds."""
        query = "SELECT name, image, label, image_stat, label_stat, rules FROM annotations"
        if names is None:
            return {row[0]: tuple(row[1:]) for row in self.db.execute(query)}
        found = {}
        for name in names:
            row = self.db.execute(f"{query} WHERE name = ?", (name,)).fetchone()
            if row:
                found[name] = tuple(row[1:])
        return found

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM annotations").fetchone()[0]

    def get(self, name: str) -> Accepted | None:
        row = self.db.execute(
            f"SELECT {_ACCEPTED_COLUMNS} FROM annotations WHERE name = ?", (name,)
        )
        found = row.fetchone()
        return _accepted(found) if found else None

    def holder_of_image(self, image_sha256: str) -> Accepted | None:
        """The accepted annotation whose image has these bytes, if any."""
        row = self.db.execute(
            f"SELECT {_ACCEPTED_COLUMNS} FROM annotations WHERE image_sha256 = ? LIMIT 1",
            (image_sha256,),
        ).fetchone()
        return _accepted(row) if row else None

    def put(self, annotation: Accepted) -> None:
        """Insert or update; a name already accepted keeps its first run and arrival."""
        self._forget_content(annotation.name)
        self._count_content(annotation.name, annotation.content_hash, annotation.boxes, +1)
        self.db.execute(
            f"""INSERT INTO annotations ({_ACCEPTED_COLUMNS}, content_hash, changed_run)
            VALUES ({", ".join("?" * (_ACCEPTED_COLUMN_COUNT + 2))})
            ON CONFLICT (name) DO UPDATE SET
                origin = excluded.origin, image = excluded.image, label = excluded.label,
                image_stat = excluded.image_stat, label_stat = excluded.label_stat,
                image_sha256 = excluded.image_sha256, label_sha256 = excluded.label_sha256,
                width = excluded.width, height = excluded.height, boxes = excluded.boxes,
                phash = excluded.phash, media_name = excluded.media_name,
                rules = excluded.rules, content_hash = excluded.content_hash,
                changed_run = excluded.accepted_run""",
            (*_row(annotation), annotation.content_hash, annotation.accepted_run),
        )

    def remove(self, name: str) -> None:
        """Forget an annotation and its outputs' list entries (files stay for retention)."""
        for key in self.settings_keys():
            self.remove_outputs(key, name)
        self._forget_content(name)
        self.db.execute("DELETE FROM annotations WHERE name = ?", (name,))

    def _forget_content(self, name: str) -> None:
        row = self.db.execute(
            "SELECT content_hash, boxes FROM annotations WHERE name = ?", (name,)
        ).fetchone()
        if row:
            self._count_content(name, row[0], json.loads(row[1]), -1)

    def _count_content(self, name: str, content_hash: str, boxes: list, sign: int) -> None:
        """Keep the content version and the class histogram current, by delta."""
        total = int(self.get_meta("content_sum", "0"), 16)
        total = (total + sign * _line_value(f"{name}:{content_hash}")) % LIST_SUM_MODULUS
        self.set_meta("content_sum", f"{total:064x}")
        for box in boxes:
            self.db.execute(
                """INSERT INTO class_counts VALUES (?, ?)
                ON CONFLICT (class_id) DO UPDATE SET boxes = boxes + excluded.boxes""",
                (int(box[0]), sign),
            )

    def iter_annotations(self, names: Iterable[str] | None = None) -> Iterator[Accepted]:
        if names is None:
            query = f"SELECT {_ACCEPTED_COLUMNS} FROM annotations ORDER BY name"
            yield from map(_accepted, self.db.execute(query))
            return
        for name in names:
            if found := self.get(name):
                yield found

    def class_counts(self) -> dict[int, int]:
        rows = self.db.execute("SELECT class_id, boxes FROM class_counts WHERE boxes > 0")
        return dict(rows)

    def content_version(self) -> str:
        """A hash over every (name, content) pair, order-free, maintained by delta."""
        return sha256_text([self.get_meta("content_sum", "0")])

    # splits

    def split_of(self, name: str) -> str | None:
        row = self.db.execute("SELECT split FROM splits WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def assign_split(self, name: str, split: str, reason: str, run: int) -> None:
        """Record ``name``'s split; a name that has one keeps it forever."""
        self.db.execute(
            "INSERT OR IGNORE INTO splits VALUES (?, ?, ?, ?)", (name, split, reason, run)
        )

    def unassigned(self) -> list[Newcomer]:
        """Accepted annotations without a split yet, in arrival order (what grouping needs
        only: a first run at 100k must not hold every box list at once). Only rows changed
        after the last assignment are looked at (``mark_assigned``)."""
        rows = self.db.execute(
            """SELECT a.rowid, a.name, a.phash, a.media_name FROM annotations a
            LEFT JOIN splits s ON s.name = a.name
            WHERE a.changed_run > ? AND s.name IS NULL
            ORDER BY a.arrived_ns, a.name""",
            (self.assigned_through(),),
        )
        return [Newcomer(*row) for row in rows]

    def assigned_through(self) -> int:
        return int(self.get_meta(ASSIGNED_THROUGH, "-1"))

    def mark_assigned(self, run: int) -> None:
        """Every annotation changed up to ``run`` has its split (inside the assigning
        transaction, so a killed run leaves the mark where it was)."""
        self.set_meta(ASSIGNED_THROUGH, str(run))

    def media_changed(self) -> set[str]:
        """Media names of the annotations changed since the last assignment."""
        rows = self.db.execute(
            """SELECT DISTINCT media_name FROM annotations
            WHERE changed_run > ? AND media_name IS NOT NULL""",
            (self.assigned_through(),),
        )
        return {media for (media,) in rows}

    def media_members(self, media_name: str) -> list[tuple[str, str]]:
        """(name, split) of the frames of one media that have a split, first assigned first."""
        rows = self.db.execute(
            """SELECT a.name, s.split FROM annotations a JOIN splits s ON s.name = a.name
            WHERE a.media_name = ? ORDER BY s.assigned_run, a.name""",
            (media_name,),
        )
        return list(rows)

    def exclude(self, name: str, reason: str) -> None:
        """Take ``name`` out of training for good: out of every list, and never augmented
        again. The one change a split may take: it leaves, never joins another split."""
        for key in self.settings_keys():
            self.remove_outputs(key, name)
        self.db.execute(
            "UPDATE splits SET split = ?, reason = ? WHERE name = ?", (EXCLUDED, reason, name)
        )

    def splits_of_media(self, media_name: str) -> set[str]:
        rows = self.db.execute(
            """SELECT DISTINCT s.split FROM annotations a JOIN splits s ON s.name = a.name
            WHERE a.media_name = ?""",
            (media_name,),
        )
        return {split for (split,) in rows}

    def perceptual_hashes(self) -> tuple[np.ndarray, np.ndarray]:
        """Every accepted annotation's rowid and pHash, as arrays: near-duplicate search
        needs only these; names and splits are looked up for the few matches."""
        table = np.fromiter(
            self.db.execute("SELECT rowid, phash FROM annotations"),
            dtype=[("row", np.int64), ("phash", np.int64)],
        )
        return table["row"], table["phash"]

    def names_and_splits(self, rows: Iterable[int]) -> list[tuple[str, str]]:
        """(name, split or "") of the annotations with these rowids."""
        found = []
        for row in rows:
            found.extend(
                self.db.execute(
                    """SELECT a.name, COALESCE(s.split, '') FROM annotations a
                    LEFT JOIN splits s ON s.name = a.name WHERE a.rowid = ?""",
                    (int(row),),
                )
            )
        return found

    def excluded(self) -> dict[str, str]:
        """Accepted annotations left out of training, with why."""
        rows = self.db.execute(
            """SELECT s.name, s.reason FROM splits s JOIN annotations a ON a.name = s.name
            WHERE s.split = ?""",
            (EXCLUDED,),
        )
        return dict(rows)

    def assigned_hashes_since(self, run: int) -> list[tuple[int, str, int, str]]:
        """(rowid, name, pHash, split) of the annotations assigned a split after ``run``."""
        rows = self.db.execute(
            """SELECT a.rowid, a.name, a.phash, s.split FROM splits s
            JOIN annotations a ON a.name = s.name WHERE s.assigned_run > ?""",
            (run,),
        )
        return list(rows)

    def assigned_since(self, run: int) -> list[str]:
        rows = self.db.execute(
            """SELECT s.name FROM splits s JOIN annotations a ON a.name = s.name
            WHERE s.assigned_run > ?""",
            (run,),
        )
        return [name for (name,) in rows]

    # augmented outputs

    def settings_keys(self) -> list[str]:
        """Augmentation settings with outputs (from the small sums table, not a scan)."""
        rows = self.db.execute("SELECT DISTINCT settings_key FROM list_sums")
        return [key for (key,) in rows]

    def pending(self, settings_key: str) -> list[str]:
        """Names (with a split other than excluded) whose outputs for ``settings_key`` are
        missing or from older content, among those changed since ``mark_augmented``."""
        rows = self.db.execute(
            """SELECT a.name FROM annotations a
            JOIN splits s ON s.name = a.name AND s.split != ?
            LEFT JOIN outputs o ON o.settings_key = ? AND o.source = a.name AND o.variant = 0
            WHERE a.changed_run > ?
                AND (o.content_hash IS NULL OR o.content_hash != a.content_hash)
            ORDER BY a.name""",
            (EXCLUDED, settings_key, int(self.get_meta(_augmented_key(settings_key), "-1"))),
        )
        return [name for (name,) in rows]

    def mark_augmented(self, settings_key: str, run: int) -> None:
        """Every annotation changed up to ``run`` has current outputs for ``settings_key``."""
        with self.transaction():
            self.set_meta(_augmented_key(settings_key), str(run))

    def add_outputs(self, settings_key: str, outputs: list[Output], run: int) -> None:
        """Record one annotation's outputs, replacing any older ones, and update the sums."""
        if not outputs:
            return
        self.remove_outputs(settings_key, outputs[0].source)
        split = self.split_of(outputs[0].source)
        for output in outputs:
            self.db.execute(
                "INSERT INTO outputs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    settings_key,
                    output.source,
                    output.variant,
                    output.content_hash,
                    output.image,
                    output.label,
                    output.image_size,
                    output.width,
                    output.height,
                    output.label_text,
                    run,
                ),
            )
            if split and in_split_list(split, output.variant):
                self._add_to_sum(settings_key, split, list_line(split, output.image), +1)

    def remove_outputs(self, settings_key: str, source: str) -> None:
        split = self.split_of(source)
        rows = self.db.execute(
            "SELECT variant, image FROM outputs WHERE settings_key = ? AND source = ?",
            (settings_key, source),
        ).fetchall()
        for variant, image in rows:
            if split and in_split_list(split, variant):
                self._add_to_sum(settings_key, split, list_line(split, image), -1)
        self.db.execute(
            "DELETE FROM outputs WHERE settings_key = ? AND source = ?", (settings_key, source)
        )

    def _add_to_sum(self, settings_key: str, split: str, line: str, sign: int) -> None:
        row = self.db.execute(
            "SELECT total, entries FROM list_sums WHERE settings_key = ? AND split = ?",
            (settings_key, split),
        ).fetchone()
        total, entries = (int(row[0], 16), row[1]) if row else (0, 0)
        total = (total + sign * _line_value(line)) % LIST_SUM_MODULUS
        self.db.execute(
            "INSERT OR REPLACE INTO list_sums VALUES (?, ?, ?, ?)",
            (settings_key, split, f"{total:064x}", entries + sign),
        )

    def list_sums(self, settings_key: str) -> dict[str, tuple[str, int]]:
        """split -> (running hash of its list, entries): the version id's ingredients."""
        rows = self.db.execute(
            "SELECT split, total, entries FROM list_sums WHERE settings_key = ?", (settings_key,)
        )
        return {split: (total, entries) for split, total, entries in rows}

    def split_entries(self, settings_key: str, split: str) -> Iterator[Output]:
        """The outputs in ``split``'s list, by image file name (streamed)."""
        columns = "o.source, o.variant, o.content_hash, o.image, o.label, o.image_size, "
        columns += "o.width, o.height, o.label_text"
        for row in self._in_list(columns, settings_key, split):
            yield Output(*row)

    def list_entries(self, settings_key: str, split: str) -> Iterator[tuple[str, str]]:
        """(image file, label text) of each file in ``split``'s list, by image file name:
        what a new version streams once (two columns cost a third of all of them)."""
        yield from self._in_list("o.image, o.label_text", settings_key, split)

    def _in_list(self, columns: str, settings_key: str, split: str) -> sqlite3.Cursor:
        variant_filter = "" if split == "train" else "AND o.variant = 0"
        return self.db.execute(
            f"""SELECT {columns}
            FROM outputs o JOIN splits s ON s.name = o.source AND s.split = ?
            WHERE o.settings_key = ? {variant_filter} ORDER BY o.image""",
            (split, settings_key),
        )

    def labels_since(self, run: int) -> Iterator[tuple[str, str]]:
        """(label file, text) of every output written after ``run``."""
        yield from self.db.execute(
            "SELECT label, label_text FROM outputs WHERE augmented_run > ?", (run,)
        )

    def outputs_named(self, settings_key: str, images: list[str]) -> Iterator[Output]:
        """The outputs with these image file names (those the catalogue still holds)."""
        for start in range(0, len(images), 500):
            chunk = images[start : start + 500]
            yield from (
                Output(*row)
                for row in self.db.execute(
                    f"""SELECT source, variant, content_hash, image, label, image_size, width,
                        height, label_text FROM outputs
                    WHERE settings_key = ? AND image IN ({", ".join("?" * len(chunk))})""",
                    (settings_key, *chunk),
                )
            )

    def output_files(self, settings_key: str) -> Iterator[tuple[str, str]]:
        yield from self.db.execute(
            "SELECT image, label FROM outputs WHERE settings_key = ?", (settings_key,)
        )

    # versions

    def version(self, version_id: str) -> dict | None:
        row = self.db.execute(
            "SELECT id, name, settings_key, created_at, train, valid, test FROM versions WHERE id = ?",
            (version_id,),
        ).fetchone()
        return dict(zip(_VERSION_COLUMNS, row, strict=True)) if row else None

    def add_version(self, version: dict) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO versions VALUES (?, ?, ?, ?, ?, ?, ?)",
            tuple(version[c] for c in _VERSION_COLUMNS),
        )

    def versions(self) -> list[dict]:
        """Every recorded version, newest first."""
        rows = self.db.execute(
            "SELECT id, name, settings_key, created_at, train, valid, test FROM versions "
            "ORDER BY created_at DESC, id"
        )
        return [dict(zip(_VERSION_COLUMNS, row, strict=True)) for row in rows]

    def forget_version(self, version_id: str) -> None:
        self.db.execute("DELETE FROM versions WHERE id = ?", (version_id,))

    def forget_outputs_of(self, settings_key: str) -> None:
        self.db.execute("DELETE FROM meta WHERE key = ?", (_augmented_key(settings_key),))
        self.db.execute("DELETE FROM outputs WHERE settings_key = ?", (settings_key,))
        self.db.execute("DELETE FROM list_sums WHERE settings_key = ?", (settings_key,))


def _augmented_key(settings_key: str) -> str:
    return f"{AUGMENTED_THROUGH}:{settings_key}"


_VERSION_COLUMNS = ("id", "name", "settings_key", "created_at", "train", "valid", "test")
_FIELDS = (
    "name",
    "origin",
    "image",
    "label",
    "image_stat",
    "label_stat",
    "image_sha256",
    "label_sha256",
    "width",
    "height",
    "boxes",
    "phash",
    "media_name",
    "accepted_run",
    "arrived_ns",
    "rules",
)
_ACCEPTED_COLUMNS = ", ".join(_FIELDS)
_ACCEPTED_COLUMN_COUNT = len(_FIELDS)


def _row(annotation: Accepted) -> tuple:
    values = [getattr(annotation, f) for f in _FIELDS]
    values[_FIELDS.index("boxes")] = json.dumps(annotation.boxes)
    return tuple(values)


def _accepted(row) -> Accepted:
    values = dict(zip(_FIELDS, row, strict=True))
    values["boxes"] = json.loads(values["boxes"])
    return Accepted(**values)
