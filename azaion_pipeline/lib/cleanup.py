"""Debris of failed publishes: partial release folders and unfinished multipart uploads.

A release folder holding ``release.json`` is complete and is never touched, nor is the channels'
TUF metadata. Only what is older than ``older_than`` goes, so a publish still running is safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from azaion_pipeline.lib.cdn import CdnStore
from azaion_pipeline.lib.distribution import RELEASE_RECORD
from azaion_pipeline.lib.tuf_repo import TUF_FOLDER


@dataclass
class CleanupReport:
    removed_objects: list[str] = field(default_factory=list)
    partial_releases: list[str] = field(default_factory=list)  # version folders removed whole
    aborted_uploads: list[str] = field(default_factory=list)  # keys of the aborted uploads
    kept_young: list[str] = field(default_factory=list)  # partial, but maybe still uploading

    def summary(self) -> str:
        return (
            f"removed {len(self.partial_releases)} partial release(s) "
            f"({len(self.removed_objects)} object(s)), aborted {len(self.aborted_uploads)} "
            f"unfinished upload(s), kept {len(self.kept_young)} recent partial release(s)"
        )


def clean_debris(
    cdn: CdnStore,
    model_name: str,
    prefix: str,
    older_than: timedelta,
    now: datetime | None = None,
) -> CleanupReport:
    root = f"{prefix}/{model_name}/"
    cutoff = (now or datetime.now(UTC)) - older_than
    report = CleanupReport()

    folders: dict[str, list[tuple[str, datetime]]] = {}
    for key, modified in cdn.list_objects(root):
        version, slash, _ = key[len(root) :].partition("/")
        if slash and version != TUF_FOLDER:
            folders.setdefault(version, []).append((key, modified))
    complete = {
        v
        for v, objects in folders.items()
        if any(k.endswith(f"/{RELEASE_RECORD}") for k, _ in objects)
    }
    for version, objects in sorted(folders.items()):
        if version in complete:
            continue
        if max(modified for _, modified in objects) > cutoff:
            report.kept_young.append(version)
            continue
        keys = sorted(key for key, _ in objects)
        cdn.delete(keys)
        report.partial_releases.append(version)
        report.removed_objects += keys

    # An unfinished upload is no object yet, so no complete release can reference it.
    for key, upload_id, last_activity in cdn.multipart_uploads(root):
        if last_activity <= cutoff:
            cdn.abort_upload(key, upload_id)
            report.aborted_uploads.append(key)
    return report
