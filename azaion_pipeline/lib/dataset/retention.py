"""Retention: remove what no kept model and no recent version references, report the bytes.

Kept: the last ``keep_last`` versions, plus every version a kept model names (the
champion, published releases: ``protected``). Removed: other version folders, store files
that neither a kept version lists nor the catalogue holds now (outputs of deleted or
edited annotations), and whole store folders of augmentation settings nothing uses.
Sources in data/ are never touched.

Catalogue snapshots are taken here (a whole copy is O(total): once per retention run, not
per ingest) under ``catalogue/snapshots/catalogue-{UTC time}.sqlite``. Kept: the newest
``keep_snapshots``, and for each kept version the first snapshot taken after it was
created (the catalogue as it was while that version was current, e.g. to rebuild its
label caches after its annotations left).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from azaion_pipeline.lib.dataset.catalogue import Catalogue, catalogue_path
from azaion_pipeline.lib.dataset.versions import read_list, version_label
from azaion_pipeline.lib.layout import IMAGES, LABELS, SPLITS, AzaionLayout

STORE_PREFIX = "aug-"
SNAPSHOTS = "snapshots"
SNAPSHOT_TIME = "%Y%m%dT%H%M%S.%fZ"
DEFAULT_KEEP_SNAPSHOTS = 7


@dataclass
class RetentionReport:
    kept_versions: list[str] = field(default_factory=list)
    removed_versions: list[str] = field(default_factory=list)
    removed_settings: list[str] = field(default_factory=list)
    removed_files: int = 0
    snapshot: Path | None = None  # taken by this run
    removed_snapshots: list[str] = field(default_factory=list)
    bytes_freed: int = 0


def snapshot_dir(layout: AzaionLayout) -> Path:
    return catalogue_path(layout).parent / SNAPSHOTS


def _snapshot_time(path: Path) -> datetime:
    stamp = path.stem.removeprefix("catalogue-")
    return datetime.strptime(stamp, SNAPSHOT_TIME).replace(tzinfo=UTC)


def snapshots(layout: AzaionLayout) -> list[Path]:
    """The catalogue's snapshots, newest first."""
    folder = snapshot_dir(layout)
    found = folder.glob("catalogue-*.sqlite") if folder.is_dir() else []
    return sorted(found, key=_snapshot_time, reverse=True)


def take_snapshot(catalogue: Catalogue, layout: AzaionLayout) -> Path:
    target = snapshot_dir(layout) / f"catalogue-{datetime.now(UTC):{SNAPSHOT_TIME}}.sqlite"
    target.parent.mkdir(parents=True, exist_ok=True)
    catalogue.snapshot(target)
    return target


def _tree_bytes(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):  # symlinks into the store are not followed
        for name in files:
            total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _remove_file(path: Path, report: RetentionReport) -> None:
    try:
        size = path.stat().st_size
        links = path.stat().st_nlink
        path.unlink()
    except FileNotFoundError:
        return
    report.removed_files += 1
    if links == 1:  # a hard link to a source in data/ frees nothing
        report.bytes_freed += size


def apply_retention(
    catalogue: Catalogue,
    layout: AzaionLayout,
    keep_last: int,
    protected: set[str],
    current_settings_key: str | None = None,
    keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS,
) -> RetentionReport:
    """Remove what nothing kept references; ``protected`` holds dataset versions of kept
    models (``version_label`` form or folder names). Takes a catalogue snapshot first."""
    report = RetentionReport(snapshot=take_snapshot(catalogue, layout))
    versions = catalogue.versions()
    kept = [
        v
        for rank, v in enumerate(versions)
        if rank < keep_last or v["name"] in protected or version_label(v["name"]) in protected
    ]
    kept_ids = {v["id"] for v in kept}
    report.kept_versions = [v["name"] for v in kept]
    for version in versions:
        if version["id"] in kept_ids:
            continue
        directory = layout.datasets / version["name"]
        if directory.exists():
            report.bytes_freed += _tree_bytes(directory)
            shutil.rmtree(directory)
        with catalogue.transaction():
            catalogue.forget_version(version["id"])
        report.removed_versions.append(version["name"])

    live_keys = {v["settings_key"] for v in kept} | (
        {current_settings_key} if current_settings_key else set()
    )
    if layout.processed.is_dir():
        for store in sorted(layout.processed.glob(f"{STORE_PREFIX}*")):
            key = store.name.removeprefix(STORE_PREFIX)
            if key in live_keys:
                _sweep_store(catalogue, layout, store, key, kept, report)
                continue
            for sub in (IMAGES, LABELS):
                for entry in os.scandir(store / sub) if (store / sub).is_dir() else ():
                    _remove_file(Path(entry.path), report)
            shutil.rmtree(store)
            with catalogue.transaction():
                catalogue.forget_outputs_of(key)
            report.removed_settings.append(key)
    _prune_snapshots(layout, kept, keep_snapshots, report)
    catalogue.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return report


def _prune_snapshots(
    layout: AzaionLayout, kept: list[dict], keep: int, report: RetentionReport
) -> None:
    """Delete snapshots that are neither among the newest ``keep`` nor a kept version's."""
    taken = snapshots(layout)
    wanted = set(taken[:keep])
    oldest_first = taken[::-1]
    for version in kept:
        created = datetime.fromisoformat(version["created_at"])
        wanted.update(next(([p] for p in oldest_first if _snapshot_time(p) >= created), []))
    for path in taken:
        if path not in wanted:
            report.bytes_freed += path.stat().st_size
            path.unlink()
            report.removed_snapshots.append(path.name)


def _sweep_store(catalogue, layout, store: Path, key: str, kept: list[dict], report) -> None:
    """Delete store files of ``key`` that no kept version lists and the catalogue lacks."""
    wanted_images: set[str] = set()
    wanted_labels: set[str] = set()
    for image, label in catalogue.output_files(key):
        wanted_images.add(image)
        wanted_labels.add(label)
    for version in kept:
        if version["settings_key"] != key:
            continue
        directory = layout.datasets / version["name"]
        if not (directory / f"{SPLITS[0]}.txt").exists():
            continue  # its folder is gone already: it lists nothing
        for split in SPLITS:
            for image in read_list(directory, split):
                wanted_images.add(image)
                wanted_labels.add(image.rsplit(".", 1)[0] + ".txt")
    for sub, wanted in ((IMAGES, wanted_images), (LABELS, wanted_labels)):
        if not (store / sub).is_dir():
            continue
        with os.scandir(store / sub) as listing:
            stale = [Path(e.path) for e in listing if e.name not in wanted]
        for path in stale:
            _remove_file(path, report)
