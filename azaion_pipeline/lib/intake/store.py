"""Applying stream messages to the Azaion root, exactly once in effect.

Routing is Azaion's handler's (AZAION_FORMAT.md): Created / Edited by a validator-class role
go to ``data/``, by anyone else to ``data-seed/``; Validated moves seed -> data; Deleted moves
to ``data_deleted/``. Each annotation is in one folder at a time.

Every file lands by rename (readers see the old file or the new one) and the provenance
sidecar is written last, carrying the offset of the message applied. A replayed message (after
a crash, before its offset was stored) whose annotation already carries that offset or a later
one is skipped, so applying a prefix of the stream twice gives the same files as once.
Durability is per batch: ``sync()`` flushes every file system involved in one call each;
the consumer stores the stream offset only after that.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import shutil
import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from azaion_pipeline.lib.dataset.annotations import IMAGE_SUFFIXES
from azaion_pipeline.lib.files import link_or_copy
from azaion_pipeline.lib.intake.messages import (
    AnnotationBulkMessage,
    AnnotationMessage,
    AnnotationStatus,
    DeadLetter,
    DeadLetterReason,
    Message,
)
from azaion_pipeline.lib.intake.provenance import (
    PROVENANCE,
    Provenance,
    load_provenance,
    provenance_path,
)
from azaion_pipeline.lib.layout import IMAGES, LABELS, AzaionLayout

DEAD_LETTER = "dead-letter"
# Partial files live here (same file system as their target), cleared at start.
PARTIAL = ".intake-partial"


class Area(StrEnum):
    DATA = "data"
    SEED = "data-seed"
    DELETED = "data_deleted"


class Effect(StrEnum):
    WRITTEN = "written"
    MOVED = "moved"
    SKIPPED = "skipped"  # already applied (a replay) or nothing to do
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class Applied:
    effect: Effect
    touched: int  # annotations written or moved
    # Set when a bulk message named unknown annotations: the rest was applied.
    dead_letter: DeadLetter | None = None


@dataclass(frozen=True)
class Located:
    name: str
    area: Area
    folder: Path
    image: Path | None
    provenance: Provenance | None


def _syncfs(path: Path) -> None:
    """Flush the whole file system holding ``path`` (one call for a batch of files)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if getattr(libc, "syncfs", None) is None or libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


class AnnotationStore:
    """The three annotation folders plus the dead-letter folder, as the consumer writes them."""

    def __init__(self, layout: AzaionLayout, kill_mid_file: int | None = None):
        self.layout = layout
        self.kill_mid_file = kill_mid_file  # tests only: see IntakeSettings.kill_mid_file
        self._files_started = itertools.count(1)  # next() is atomic: writer threads share it
        self.areas = {
            Area.DATA: layout.data,
            Area.SEED: layout.data_seed,
            Area.DELETED: layout.data_deleted,
        }
        self.dead_letter_dir = layout.intake / DEAD_LETTER

    def prepare(self) -> None:
        """Create the folders and drop partial files a killed consumer left behind."""
        for folder in self.areas.values():
            for sub in (IMAGES, LABELS, PROVENANCE):
                (folder / sub).mkdir(parents=True, exist_ok=True)
            shutil.rmtree(folder / PARTIAL, ignore_errors=True)
            (folder / PARTIAL).mkdir()
        self.dead_letter_dir.mkdir(parents=True, exist_ok=True)

    def sync(self) -> None:
        seen: set[int] = set()
        for folder in [*self.areas.values(), self.dead_letter_dir]:
            device = folder.stat().st_dev
            if device not in seen:
                seen.add(device)
                _syncfs(folder)

    # -- placing files -------------------------------------------------------------------

    def _write(self, folder: Path, target: Path, data: bytes) -> None:
        partial = folder / PARTIAL / target.name
        if self.kill_mid_file is not None and next(self._files_started) == self.kill_mid_file:
            partial.write_bytes(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        partial.write_bytes(data)
        os.replace(partial, target)

    def _write_provenance(self, folder: Path, provenance: Provenance) -> None:
        self._write(
            folder, provenance_path(folder, provenance.name), provenance.dumps().encode("utf-8")
        )

    @staticmethod
    def _move_file(source: Path, target: Path) -> None:
        if source.exists():
            link_or_copy(source, target)
            source.unlink()

    def locate(self, name: str) -> Located | None:
        """Where ``name`` is, by its label (one stat per folder for a name seen nowhere).

        A move interrupted by a crash leaves the label at the target and the sidecar (written
        last at the target) still at the source: such a pair is located at the source, so the
        replayed move completes it.
        """
        label = f"{name}.txt"
        at = next(
            (a for a, folder in self.areas.items() if (folder / LABELS / label).exists()), None
        )
        if at is None:
            return None
        for area in (at, *(a for a in self.areas if a is not at)):
            provenance = load_provenance(provenance_path(self.areas[area], name))
            if provenance is not None:
                break
        else:
            area = at  # a pair that predates the intake
        folder = self.areas[area]
        return Located(name, area, folder, self._image_of(folder, name, provenance), provenance)

    @staticmethod
    def _image_of(folder: Path, name: str, provenance: Provenance | None) -> Path | None:
        # Pairs that predate the intake have no sidecar: try the usual image types.
        if provenance and provenance.image_extension:
            suffixes = (f".{provenance.image_extension}",)
        else:
            suffixes = IMAGE_SUFFIXES
        for suffix in suffixes:
            candidate = folder / IMAGES / f"{name}{suffix}"
            if candidate.exists():
                return candidate
        return None

    def _move_pair(self, found: Located, to: Area, offset: int, status: int) -> None:
        target = self.areas[to]
        image = found.image
        if image is not None:
            self._move_file(image, target / IMAGES / image.name)
        label = f"{found.name}.txt"
        self._move_file(found.folder / LABELS / label, target / LABELS / label)
        provenance = found.provenance or Provenance(
            name=found.name,
            imageExtension=image.suffix.lstrip(".") if image else None,
            offset=offset,
        )
        self._write_provenance(
            target, provenance.model_copy(update={"offset": offset, "status": status})
        )
        provenance_path(found.folder, found.name).unlink(missing_ok=True)

    @staticmethod
    def _already_applied(found: Located | None, offset: int) -> bool:
        """True when ``found`` carries this message's effect (or a later one), files intact."""
        if found is None or found.provenance is None or found.provenance.offset < offset:
            return False
        size = found.provenance.image_size
        return size is None or (found.image is not None and found.image.stat().st_size == size)

    # -- the four statuses ---------------------------------------------------------------

    def apply(self, message: Message, offset: int) -> Applied:
        """Apply one decoded message.

        Raises ``DeadLetter`` for an Edited of a missing annotation. A bulk message naming
        unknown annotations applies the known ones and returns a dead letter for the rest.
        """
        if isinstance(message, AnnotationMessage):
            return self._apply_annotation(message, offset)
        return self._apply_bulk(message, offset)

    def _apply_annotation(self, message: AnnotationMessage, offset: int) -> Applied:
        found = self.locate(message.name)
        if self._already_applied(found, offset):
            return Applied(Effect.SKIPPED, 0)
        live = found if found is not None and found.area is not Area.DELETED else None
        if message.status is AnnotationStatus.EDITED:
            if live is None:
                raise DeadLetter(
                    DeadLetterReason.EDIT_OF_MISSING,
                    "Edited names no annotation in data/ or data-seed/",
                    name=message.name,
                )
            # An operator's edit leaves the pair where it is; a validator's promotes it.
            to = Area.DATA if message.by_validator else live.area
        else:
            to = Area.DATA if message.by_validator else Area.SEED
        target = self.areas[to]
        if live is not None and live.area is not to:
            self._move_pair(live, to, offset, message.status)
            live = self.locate(message.name)
        image_target = target / IMAGES / f"{message.name}.{message.image_extension}"
        if message.image:
            self._write(target, image_target, message.image)
            if live is not None and live.image is not None and live.image != image_target:
                live.image.unlink(missing_ok=True)  # replaced by an image of another type
        elif live is not None and live.image is not None:
            image_target = live.image
        self._write(target, target / LABELS / f"{message.name}.txt", message.label_text().encode())
        self._write_provenance(
            target,
            Provenance(
                name=message.name,
                originalMediaName=message.original_media_name,
                time=message.time,
                createdRole=message.created_role,
                createdEmail=message.created_email,
                source=message.source,
                createdDate=message.created_date,
                imageExtension=image_target.suffix.lstrip("."),
                imageSize=len(message.image)
                if message.image
                else (image_target.stat().st_size if image_target.exists() else None),
                status=int(message.status),
                offset=offset,
            ),
        )
        return Applied(Effect.WRITTEN, 1)

    def _apply_bulk(self, message: AnnotationBulkMessage, offset: int) -> Applied:
        to = Area.DATA if message.status is AnnotationStatus.VALIDATED else Area.DELETED
        moves_from = (Area.SEED,) if to is Area.DATA else (Area.DATA, Area.SEED)
        moved, unknown = 0, []
        for name in dict.fromkeys(message.names):
            found = self.locate(name)
            if found is None:
                unknown.append(name)
            elif found.area in moves_from and not self._already_applied(found, offset):
                self._move_pair(found, to, offset, message.status)
                moved += 1
        dead_letter = None
        if unknown:
            dead_letter = DeadLetter(
                DeadLetterReason.UNKNOWN_NAME,
                f"{message.status.name.title()} names {len(unknown)} unknown annotation(s): "
                + ", ".join(unknown[:20]),
            )
        return Applied(Effect.MOVED if moved else Effect.SKIPPED, moved, dead_letter)

    # -- dead letters --------------------------------------------------------------------

    def dead_letter(
        self, offset: int, body: bytes, error: DeadLetter, status_property: object
    ) -> None:
        """File the message and one reasons line; keyed by offset, so a replay rewrites it."""
        stem = f"{offset:020d}"
        folder = self.dead_letter_dir
        line = {
            "offset": offset,
            "reason": str(error.reason),
            "detail": error.detail,
            "name": error.name,
            "status": _printable(status_property),
            "dead_lettered_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "message": f"{stem}.msgpack",
        }
        for target, data in (
            (folder / f"{stem}.msgpack", body),
            (folder / f"{stem}.reason.json", (json.dumps(line, ensure_ascii=True) + "\n").encode()),
        ):
            partial = folder / f".{target.name}.partial"
            partial.write_bytes(data)
            os.replace(partial, target)


def _printable(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, int | str | None) else repr(value)


def read_dead_letters(layout: AzaionLayout) -> list[dict]:
    """Every dead letter's reasons line, in stream order."""
    folder = layout.intake / DEAD_LETTER
    if not folder.is_dir():
        return []
    return [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(folder.glob("*.reason.json"))
    ]
