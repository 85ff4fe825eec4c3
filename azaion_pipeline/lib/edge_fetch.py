"""What an edge device runs: the release its channel serves, verified with TUF (python-tuf ngclient),
then loaded the Azaion way (``.small`` from the API, ``.big`` from the CDN, decrypt).

The device keeps its trusted metadata in a state folder, so the CDN can never make it accept a
lower version (rollback), expired metadata (freeze), metadata of different states mixed together,
or a part longer than signed. Only an offline device may keep its installed model past the
metadata's expiry, for the grace period signed into root.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from securesystemslib.signer import SSlibKey
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Root, TargetFile, Timestamp
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig

from azaion_pipeline.lib.api_client import AzaionApiClient
from azaion_pipeline.lib.cdn import CdnError, CdnStore
from azaion_pipeline.lib.distribution import (
    MANIFEST_SUFFIX,
    RELEASE_RECORD,
    SIGNATURE_SUFFIX,
    IntegrityError,
    ReleaseNames,
    assemble_model,
    checked_manifest,
    fetch_workdir,
    remove_stale_workdirs,
)
from azaion_pipeline.lib.hashing import sha256_file
from azaion_pipeline.lib.release_manifest import ArtifactManifest, load_public_key
from azaion_pipeline.lib.tuf_repo import GRACE_FIELD, metadata_prefix

ROOT_MAX_BYTES = UpdaterConfig().root_max_length


class UpdateRefused(IntegrityError):
    """The CDN's metadata is not safe to follow: nothing was downloaded or written."""


class CdnFetcher(FetcherInterface):
    """ngclient's downloads through the CDN's S3 API (downloader keys), each bounded by its signed length."""

    def __init__(self, cdn: CdnStore, tmp_dir: Path):
        self._cdn = cdn
        self._tmp_dir = tmp_dir

    def _key(self, url: str) -> str:
        return url.removeprefix(self._cdn.uri(""))

    def _fetch(self, url: str) -> Iterator[bytes]:
        raise NotImplementedError("every download goes through download_file, with its length")

    @contextlib.contextmanager
    def download_file(self, url: str, max_length: int) -> Iterator[IO[bytes]]:
        key = self._key(url)
        received = 0
        with tempfile.TemporaryFile(dir=self._tmp_dir) as temp:
            try:
                for chunk in self._cdn.stream(key, max_length):
                    received += len(chunk)
                    if received > max_length:
                        raise tuf_errors.DownloadLengthMismatchError(
                            f"{self._cdn.uri(key)} is longer than the {max_length} bytes its "
                            "metadata allows; stopped downloading"
                        )
                    temp.write(chunk)
            except CdnError as exc:
                if exc.status is not None:
                    raise tuf_errors.DownloadHTTPError(str(exc), exc.status) from exc
                raise tuf_errors.DownloadError(str(exc)) from exc
            temp.seek(0)
            yield temp


@dataclass(frozen=True)
class DeviceState:
    """The device's own folder: trusted metadata per model and channel, what is installed, scratch."""

    root: Path

    def metadata_dir(self, model_name: str, channel: str) -> Path:
        return self.root / "tuf" / model_name / channel

    def installed_file(self, model_name: str, channel: str, file_name: str) -> Path:
        return self.root / "installed" / model_name / channel / f"{file_name}.json"

    @property
    def scratch(self) -> Path:
        return self.root / "tmp"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One fetch at a time on this device, so cleaning up a killed one never hits a live one."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def remove_stale(self, out: Path) -> list[Path]:
        stale = remove_stale_workdirs(out)
        if self.scratch.exists():
            stale += sorted(self.scratch.iterdir())
            shutil.rmtree(self.scratch)
        self.scratch.mkdir(parents=True)
        return stale


@dataclass(frozen=True)
class FetchResult:
    manifest: ArtifactManifest | None  # None when offline and the installed model was kept
    version: str
    offline: bool = False
    stale_removed: tuple[Path, ...] = ()


def _trusted_root(cdn: CdnStore, base: str, channel: str, root_public_key: str) -> bytes:
    """The root a new device starts from, accepted only if the pinned root key signed it.

    Version 1, from which ngclient follows every rotation; a device set up after a rotation pins
    the new key instead and starts from the newest root (``root.json``).
    """
    key = SSlibKey.from_crypto(load_public_key(root_public_key))
    refusals = []
    for name in ("1.root.json", "root.json"):
        try:
            data = b"".join(cdn.stream(f"{base}{name}", ROOT_MAX_BYTES))
        except CdnError as exc:
            if exc.status == 404:
                raise CdnError(f"the {channel} has never been published: {exc}", 404) from exc
            raise
        try:
            root = Metadata[Root].from_bytes(data)
            if root.signed.roles[Root.type].keyids != [key.keyid]:
                raise tuf_errors.UnsignedMetadataError("root is not keyed to the pinned root key")
            root.signed.verify_delegate(Root.type, root.signed_bytes, root.signatures)
        except (tuf_errors.RepositoryError, ValueError, KeyError) as exc:
            refusals.append(f"{name}: {exc}")
            continue
        return data
    raise UpdateRefused(
        f"neither {cdn.uri(base)}1.root.json nor root.json is signed by the pinned root key "
        f"(AZAION_TUF_ROOT_PUBLIC_KEY): {'; '.join(refusals)}"
    )


def _refusal(exc: Exception, where: str) -> UpdateRefused:
    text = str(exc)
    if isinstance(exc, tuf_errors.ExpiredMetadataError):
        why = "the metadata has expired: a freeze (someone replays stale metadata), or the publisher stopped refreshing it"
    elif isinstance(exc, tuf_errors.BadVersionNumberError) and "must be >=" in text:
        why = "the CDN offers a lower version than this device already trusts: a rollback attack"
    elif isinstance(exc, tuf_errors.BadVersionNumberError | tuf_errors.LengthOrHashMismatchError):
        why = "the metadata files do not belong to one signed state: mixed metadata"
    elif isinstance(exc, tuf_errors.UnsignedMetadataError):
        why = "the metadata is not signed by the keys this device trusts"
    else:
        why = "the metadata does not verify"
    return UpdateRefused(f"refusing the release metadata at {where}: {why} ({text})")


def _offline(
    exc: Exception,
    state: DeviceState,
    model_name: str,
    channel: str,
    file_name: str,
    out: Path,
    now: datetime,
) -> FetchResult:
    """The CDN is unreachable: keep the installed model while the signed grace period lasts."""
    record_file = state.installed_file(model_name, channel, file_name)
    metadata_dir = state.metadata_dir(model_name, channel)
    if (
        not record_file.exists()
        or not out.exists()
        or not (metadata_dir / "timestamp.json").exists()
    ):
        raise CdnError(
            f"cannot reach the release metadata ({exc}) and no verified {out} is installed"
        )
    installed = json.loads(record_file.read_text())
    if sha256_file(out) != installed["sha256"]:
        raise IntegrityError(
            f"cannot reach the release metadata ({exc}), and {out} is not the model installed "
            "from it (it changed since)"
        )
    expires = Metadata[Timestamp].from_file(str(metadata_dir / "timestamp.json")).signed.expires
    root = Metadata[Root].from_file(str(metadata_dir / "root.json")).signed
    grace = timedelta(seconds=int(root.unrecognized_fields.get(GRACE_FIELD, 0)))
    if now > expires + grace:
        raise UpdateRefused(
            f"offline ({exc}); the trusted metadata expired at {expires.isoformat()}, more than the "
            f"signed grace of {grace} ago: refusing to keep using {out}, which may have been withdrawn"
        )
    return FetchResult(None, installed["version"], offline=True)


def _refreshed_updater(
    cdn: CdnStore, metadata_dir: Path, scratch: Path, base: str, what: str, root_public_key: str
) -> Updater:
    """ngclient's Updater with root, timestamp, snapshot and targets refreshed and verified.

    Raises UpdateRefused when the metadata is unsafe, CdnError when the server answered an error,
    and DownloadError (or a status-less CdnError) when it could not be reached at all.
    """
    metadata_dir.mkdir(parents=True, exist_ok=True)
    first_use = not (metadata_dir / "root.json").exists()
    try:
        updater = Updater(
            str(metadata_dir),
            cdn.uri(base),
            fetcher=CdnFetcher(cdn, scratch),
            config=UpdaterConfig(prefix_targets_with_hash=False),
            bootstrap=_trusted_root(cdn, base, what, root_public_key) if first_use else None,
        )
        updater.refresh()
    except tuf_errors.DownloadHTTPError as exc:
        raise CdnError(f"{what}: {exc}", exc.status_code) from exc
    except tuf_errors.DownloadLengthMismatchError as exc:
        raise UpdateRefused(f"refusing the release metadata at {cdn.uri(base)}: {exc}") from exc
    except tuf_errors.RepositoryError as exc:
        raise _refusal(exc, cdn.uri(base)) from exc
    return updater


def fetch_current(
    api: AzaionApiClient,
    cdn: CdnStore,
    *,
    state_dir: Path,
    model_name: str,
    channel: str,
    file_name: str,
    out: Path,
    model_secret: str,
    public_key: str,
    root_public_key: str,
    prefix: str,
    hardware: str | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FetchResult:
    """Install the ``file_name`` the channel serves at ``out`` (atomically; nothing on failure)."""
    state = DeviceState(Path(state_dir))
    out = Path(out)
    base = metadata_prefix(model_name, channel, prefix)
    with state.locked():
        stale = tuple(state.remove_stale(out))
        try:
            updater = _refreshed_updater(
                cdn,
                state.metadata_dir(model_name, channel),
                state.scratch,
                base,
                f"{channel} channel of {model_name}",
                root_public_key,
            )
        except (tuf_errors.DownloadError, CdnError) as exc:
            if isinstance(exc, CdnError) and exc.status is not None:
                raise  # the server answered: not offline
            return _offline(exc, state, model_name, channel, file_name, out, now())

        infos = {
            suffix: _target(updater, f"{file_name}{suffix}", channel, model_name)
            for suffix in (MANIFEST_SUFFIX, SIGNATURE_SUFFIX, ".big")
        }
        versions = {info.custom["version"] for info in infos.values()}
        versions.add(_target(updater, RELEASE_RECORD, channel, model_name).custom["version"])
        if len(versions) != 1:
            raise UpdateRefused(
                f"{channel} targets of {model_name} span releases {sorted(versions)}"
            )
        names = ReleaseNames(model_name, versions.pop(), prefix)
        with fetch_workdir(out) as tmp:
            paths = {
                suffix: _download(updater, info, Path(tmp) / f"target{suffix}", cdn, names)
                for suffix, info in infos.items()
            }
            manifest = checked_manifest(
                paths[MANIFEST_SUFFIX].read_bytes(),
                paths[SIGNATURE_SUFFIX].read_bytes(),
                public_key,
                names,
                file_name,
            )
            assemble_model(api, names, manifest, paths[".big"], out, model_secret, hardware)
        record = state.installed_file(model_name, channel, file_name)
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(
            json.dumps({"version": names.version, "sha256": manifest.plaintext.sha256})
        )
        return FetchResult(manifest, names.version, stale_removed=stale)


def _target(updater: Updater, path: str, channel: str, model_name: str) -> TargetFile:
    info = updater.get_targetinfo(path)
    if info is None:
        raise IntegrityError(f"the {channel} channel of {model_name} does not serve {path}")
    if info.custom.get("channel") != channel:
        raise UpdateRefused(
            f"{path} in the {channel} metadata is signed for channel {info.custom.get('channel')!r}"
        )
    return info


def _download(
    updater: Updater, info: TargetFile, path: Path, cdn: CdnStore, names: ReleaseNames
) -> Path:
    """One target from the release folder; ngclient checks its signed length and hash."""
    what = f"{info.path} of {names.model_name} {names.version}"
    try:
        updater.download_target(info, str(path), cdn.uri(names.folder))
    except (tuf_errors.DownloadLengthMismatchError, tuf_errors.RepositoryError) as exc:
        raise IntegrityError(f"{what}: {exc}; refusing to write anything") from exc
    except tuf_errors.DownloadError as exc:
        raise CdnError(f"downloading {what} failed: {exc}") from exc
    return path
