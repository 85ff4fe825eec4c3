"""Retention: remove what no kept model and no recent version references, report the bytes.

Kept: the last ``keep_last`` versions, plus every version a kept model names (the
champion, published releases: ``protected``). Removed: other version folders, store files
that neither a kept version lists nor the catalogue holds now (outputs of deleted or
edited annotations), and whole store folders of augmentation settings nothing uses.
Sources in data/ are never touched.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from azaion_pipeline.lib.dataset.catalogue import Catalogue
from azaion_pipeline.lib.dataset.versions import read_list, version_label
from azaion_pipeline.lib.layout import IMAGES, LABELS, SPLITS, AzaionLayout

STORE_PREFIX = "aug-"


@dataclass
class RetentionReport:
    kept_versions: list[str] = field(default_factory=list)
    removed_versions: list[str] = field(default_factory=list)
    removed_settings: list[str] = field(default_factory=list)
    removed_files: int = 0
    bytes_freed: int = 0


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
) -> RetentionReport:
    """Remove what nothing kept references; ``protected`` holds dataset versions of kept
    models (``version_label`` form or folder names)."""
    report = RetentionReport()
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
    catalogue.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return report


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
