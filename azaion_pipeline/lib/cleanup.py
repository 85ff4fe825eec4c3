"""Debris of failed publishes: partial release folders, unfinished multipart uploads and abandoned
``.small`` parts on the API.

A publish that fails before its channel moves removes what it staged itself (``discard_release``);
the cleanup job (``clean_debris``) removes what a killed publish could not, including TUF files
newer than what a channel's timestamp references (a point cut short). A release folder
holding ``release.json`` is complete and is never touched, nor is the channels' TUF metadata, nor
a sealed folder on the API. Only what is older than ``older_than`` goes, so a running publish is safe.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from azaion_pipeline.lib.api_client import ApiError, AzaionApiClient
from azaion_pipeline.lib.cdn import CdnError, CdnStore
from azaion_pipeline.lib.distribution import RELEASE_RECORD, ReleaseNames
from azaion_pipeline.lib.tuf_repo import CHANNELS, TUF_FOLDER, TufRepository

log = logging.getLogger(__name__)


@dataclass
class CleanupReport:
    removed_objects: list[str] = field(default_factory=list)
    partial_releases: list[str] = field(default_factory=list)  # version folders removed whole
    aborted_uploads: list[str] = field(default_factory=list)  # keys of the aborted uploads
    removed_smalls: list[str] = field(default_factory=list)  # "folder/name.small" on the API
    unreferenced_metadata: list[str] = field(default_factory=list)  # a point cut short left them
    sealed: list[str] = field(default_factory=list)  # complete releases the API now keeps
    kept_young: list[str] = field(default_factory=list)  # partial, but maybe still uploading

    def summary(self) -> str:
        return (
            f"removed {len(self.partial_releases)} partial release(s) "
            f"({len(self.removed_objects)} object(s)), aborted {len(self.aborted_uploads)} "
            f"unfinished upload(s), removed {len(self.removed_smalls)} abandoned .small part(s), "
            f"removed {len(self.unreferenced_metadata)} unreferenced TUF file(s), "
            f"sealed {len(self.sealed)} complete release(s), "
            f"kept {len(self.kept_young)} recent partial release(s)"
        )


def discard_release(
    cdn: CdnStore, names: ReleaseNames, file_names: Iterable[str], admin: AzaionApiClient | None
) -> None:
    """Remove what a failed publish staged, on both sides; what fails to go is the cleanup job's.

    ``release.json`` goes first, so a discard cut short leaves a partial (cleanable) folder.
    """
    folder = f"{names.folder}/"
    try:
        keys = cdn.list_keys(folder)
        if names.record in keys:
            cdn.delete([names.record])
        cdn.delete([key for key in keys if key != names.record])
        for key, upload_id, _ in cdn.multipart_uploads(folder):
            cdn.abort_upload(key, upload_id)
    except CdnError as exc:
        log.warning("%s stays on the CDN for the cleanup job: %s", folder, exc)
    if admin is None:
        log.warning("no API admin identity: the .small parts of %s wait for one", names.folder)
        return
    for file_name in file_names:
        try:
            admin.delete_file(names.folder, names.small(file_name))
        except ApiError as exc:
            log.warning("%s stays on the API for the cleanup job: %s", names.folder, exc)


def clean_debris(
    cdn: CdnStore,
    model_name: str,
    prefix: str,
    older_than: timedelta,
    now: datetime | None = None,
    admin: AzaionApiClient | None = None,
) -> CleanupReport:
    """``admin`` (an Admin or ApiAdmin on the API) also cleans the ``.small`` side."""
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

    for channel in CHANNELS:
        repo = TufRepository(cdn, model_name, channel, {}, prefix)
        unreferenced = set(repo.unreferenced())
        old = sorted(
            key
            for key, modified in cdn.list_objects(repo.base)
            if key in unreferenced and modified <= cutoff
        )
        if old:
            cdn.delete(old)
            report.unreferenced_metadata += old

    if admin is not None:
        _clean_api(admin, root, complete, cutoff, report)
    return report


def _clean_api(
    admin: AzaionApiClient,
    root: str,
    complete: set[str],
    cutoff: datetime,
    report: CleanupReport,
) -> None:
    """Seal the complete releases' folders; remove the rest once old enough."""
    folders: dict[str, list] = {}
    for stored in admin.list_files(root.rstrip("/")):
        version, slash, _ = stored.folder.removeprefix(root).partition("/")
        if not slash and stored.folder.startswith(root):  # only {root}{version}: a release folder
            folders.setdefault(version, []).append(stored)
    for version, files in sorted(folders.items()):
        folder = f"{root}{version}"
        if version in complete:
            if not all(f.sealed for f in files):  # its publish died before sealing it
                admin.seal(folder)
                report.sealed.append(version)
            continue
        if any(f.sealed for f in files):
            continue
        if max(datetime.fromtimestamp(f.modified, UTC) for f in files) > cutoff:
            if version not in report.kept_young:
                report.kept_young.append(version)
            continue
        for stored in files:
            admin.delete_file(folder, stored.filename)
            report.removed_smalls.append(f"{folder}/{stored.filename}")
