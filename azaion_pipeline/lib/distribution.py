"""Stage and fetch releases: encrypt → split → ``.big`` to the CDN → ``.small`` to the API → signed
manifests → ``release.json``; and the reverse, verifying before decrypting.

Object names are versioned and never overwritten. A staged release is served by nobody until a
channel's TUF metadata points at it (``channels.py``), which happens only after its round trip.

CDN keys:  {prefix}/{model}/{version}/{file}.big | .manifest.json | .manifest.sig,
           {prefix}/{model}/{version}/signing.pub | release.json (written once the version is complete),
           {prefix}/{model}/tuf/{channel}/... (the channels' TUF metadata, see tuf_repo.py)
API files: folder {prefix}/{model}/{version}, name {file}.small
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from azaion_pipeline.lib.api_client import AzaionApiClient
from azaion_pipeline.lib.cdn import CdnStore
from azaion_pipeline.lib.crypto import DecryptionError, decrypt_stream, model_key_string
from azaion_pipeline.lib.evaluation.scoring import EvaluationSummary
from azaion_pipeline.lib.export import ExportedModel
from azaion_pipeline.lib.hashing import sha256_file
from azaion_pipeline.lib.parts import SMALL_SIZE_KB, JoinedReader, encrypt_and_split
from azaion_pipeline.lib.records import Record
from azaion_pipeline.lib.release_manifest import (
    ArtifactManifest,
    ManifestError,
    public_key_text,
    sign_manifest,
    verify_manifest,
)
from azaion_pipeline.lib.train import TrainedWeights

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "azaion"
DEFAULT_PREFIX = "models"
# Model names and prefixes become S3 keys and API folders: plain path segments only.
NAME_PATTERN = r"^[A-Za-z0-9._-]+$"
PREFIX_PATTERN = r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$"
# Written after every part of a version is up: versions without it are partial, never current.
RELEASE_RECORD = "release.json"
SIGNING_PUB = "signing.pub"
MANIFEST_SUFFIX = ".manifest.json"
SIGNATURE_SUFFIX = ".manifest.sig"
WORKDIR_MARK = ".fetch-"  # .{out name}.fetch-XXXX: the temporary folder of one fetch


class IntegrityError(RuntimeError):
    """What was downloaded is not what was published: nothing was written."""


class ReleaseRecord(BaseModel):
    """release.json: what one complete version holds."""

    model_name: str
    version: str
    model_version: str
    files: list[str] = Field(min_length=1)
    updated_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())


class PublishedArtifact(Record):
    """One export as published: what it was, its signed manifest and where its parts went."""

    export: ExportedModel
    manifest: ArtifactManifest
    big_uri: str
    small_uri: str
    manifest_uri: str


class Release(Record):
    """published_model's output: one version of one model, every export in it, and the channel
    that serves it since its round trip passed."""

    version: str
    model_name: str
    prefix: str
    channel: str
    targets_version: int  # the TUF targets version that made the channel serve it
    previous_version: str | None  # what the channel served before
    artifacts: tuple[PublishedArtifact, ...] = Field(min_length=1)

    @property
    def source(self) -> TrainedWeights:
        """The trained weights every artifact was exported from."""
        return self.artifacts[0].export.source


@dataclass(frozen=True)
class StagedRelease:
    """Every object of a version is up (release.json last); no channel serves it yet."""

    names: ReleaseNames
    record: ReleaseRecord
    artifacts: tuple[PublishedArtifact, ...]


@dataclass(frozen=True)
class ReleaseNames:
    """Where one version of one model lives in the two stores."""

    model_name: str
    version: str
    prefix: str = DEFAULT_PREFIX

    @property
    def folder(self) -> str:
        return f"{self.prefix}/{self.model_name}/{self.version}"

    def big(self, file_name: str) -> str:
        return f"{self.folder}/{file_name}.big"

    def small(self, file_name: str) -> str:
        return f"{file_name}.small"

    def manifest(self, file_name: str) -> str:
        return f"{self.folder}/{file_name}{MANIFEST_SUFFIX}"

    def signature(self, file_name: str) -> str:
        return f"{self.folder}/{file_name}{SIGNATURE_SUFFIX}"

    @property
    def record(self) -> str:
        return f"{self.folder}/{RELEASE_RECORD}"


def new_version(model_version: str, now: datetime | None = None) -> str:
    """Sortable by time, traceable to the weights, safe as an S3 key and a folder name."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{re.sub(r'[^A-Za-z0-9._-]', '_', model_version)[:24]}"


def name_release(
    exports: Sequence[ExportedModel], model_name: str, prefix: str = DEFAULT_PREFIX
) -> ReleaseNames:
    """A new version for ``exports``, which must all come from one trained model."""
    if not exports:
        raise ValueError("nothing to publish: no exports given")
    model_version = exports[0].model_version
    mixed = sorted({e.model_version for e in exports} - {model_version})
    if mixed:
        raise ValueError(f"exports of models {mixed} mixed with {model_version}")
    return ReleaseNames(model_name, new_version(model_version), prefix)


def stage_release(
    api: AzaionApiClient,
    cdn: CdnStore,
    exports: Sequence[ExportedModel],
    names: ReleaseNames,
    *,
    model_secret: str,
    signing_key: str,
    workdir: Path,
    small_size_kb: int = SMALL_SIZE_KB,
    evaluation: EvaluationSummary | None = None,
) -> StagedRelease:
    """Upload ``exports`` (named by ``name_release``) as a new version, served by nobody yet."""
    source = exports[0].source
    model_name = names.model_name
    metrics = {"test_map50_95": source.test.map50_95 if source.test else 0.0}
    key_str = model_key_string(model_secret)
    published = []
    cdn.put_bytes(
        f"{names.folder}/{SIGNING_PUB}", public_key_text(signing_key).encode(), "text/plain"
    )
    for export in exports:
        file_name = export.file.path.name
        small_path = workdir / f"{file_name}.small"
        big_path = workdir / f"{file_name}.big"
        split = encrypt_and_split(export.file.path, small_path, big_path, key_str, small_size_kb)
        log.info(
            "encrypted %s: %d bytes -> small %d + big %d",
            file_name,
            split.plaintext.size,
            split.small.size,
            split.big.size,
        )
        big_uri = cdn.upload_file(big_path, names.big(file_name))
        api.upload_file(names.folder, names.small(file_name), small_path.read_bytes())
        manifest = ArtifactManifest.describe(
            split,
            model_name=model_name,
            version=names.version,
            model_version=source.model_version,
            dataset_version=source.dataset_version,
            format=export.file.format,
            file_name=file_name,
            metrics=metrics,
            evaluation=evaluation,
        )
        data, signature = sign_manifest(manifest, signing_key)
        cdn.put_bytes(names.signature(file_name), signature, "application/octet-stream")
        manifest_uri = cdn.put_bytes(names.manifest(file_name), data)
        small_uri = f"{api.url}/resources/get/{names.folder}/{names.small(file_name)}"
        published.append(
            PublishedArtifact(
                export=export,
                manifest=manifest,
                big_uri=big_uri,
                small_uri=small_uri,
                manifest_uri=manifest_uri,
            )
        )
        small_path.unlink()
        big_path.unlink()
    record = ReleaseRecord(
        model_name=model_name,
        version=names.version,
        model_version=source.model_version,
        files=[a.manifest.file_name for a in published],
    )
    cdn.put_bytes(names.record, record.model_dump_json().encode())
    return StagedRelease(names, record, tuple(published))


def list_versions(cdn: CdnStore, model_name: str, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Complete versions only, oldest first; a version a failed publish left half-way is not one."""
    root = f"{prefix}/{model_name}/"
    return sorted(
        key[len(root) :].removesuffix(f"/{RELEASE_RECORD}")
        for key in cdn.list_keys(root)
        if key.endswith(f"/{RELEASE_RECORD}") and key.count("/") == root.count("/") + 1
    )


def fetch_workdir(out: Path) -> tempfile.TemporaryDirectory:
    """A private folder beside ``out`` (same filesystem, so the final rename is atomic)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}{WORKDIR_MARK}")


def remove_stale_workdirs(out: Path) -> list[Path]:
    """Folders a killed fetch of ``out`` left behind (callers hold the device lock)."""
    stale = sorted(out.parent.glob(f".{glob.escape(out.name)}{WORKDIR_MARK}*"))
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return stale


def checked_manifest(
    data: bytes, signature: bytes, public_key: str, names: ReleaseNames, file_name: str
) -> ArtifactManifest:
    """The manifest, once its signature verifies and it describes exactly this file of this release."""
    try:
        manifest = verify_manifest(data, signature, public_key)
    except ManifestError as exc:
        raise IntegrityError(f"{file_name} {names.version}: {exc}") from exc
    if (manifest.model_name, manifest.version, manifest.file_name) != (
        names.model_name,
        names.version,
        file_name,
    ):
        raise IntegrityError(f"manifest at {names.manifest(file_name)} describes another artifact")
    return manifest


def assemble_model(
    api: AzaionApiClient,
    names: ReleaseNames,
    manifest: ArtifactManifest,
    big_path: Path,
    out: Path,
    model_secret: str,
    hardware: str | None = None,
) -> None:
    """``.small`` from the API + the downloaded ``.big``: check both, decrypt, check, rename to ``out``."""
    file_name = manifest.file_name
    small = api.load_bytes(names.folder, names.small(file_name), hardware)
    _check("small part", len(small), hashlib.sha256(small).hexdigest(), manifest.small)
    _check("big part", big_path.stat().st_size, sha256_file(big_path), manifest.big)
    plain_path = big_path.with_name(f"{big_path.name}.plain")
    with open(big_path, "rb") as big, open(plain_path, "wb") as plain:
        try:
            decrypt_stream(JoinedReader(small, big), plain, model_key_string(model_secret))
        except DecryptionError as exc:
            raise IntegrityError(f"{file_name}: {exc} (is AZAION_MODEL_KEY right?)") from exc
    _check(
        "decrypted model (is AZAION_MODEL_KEY right?)",
        plain_path.stat().st_size,
        sha256_file(plain_path),
        manifest.plaintext,
    )
    os.replace(plain_path, out)


def fetch_artifact(
    api: AzaionApiClient,
    cdn: CdnStore,
    *,
    model_name: str,
    file_name: str,
    out: Path,
    model_secret: str,
    public_key: str,
    version: str,
    hardware: str | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> ArtifactManifest:
    """One named version straight from the stores, as the publisher checks a staged release.

    Devices go through their channel's TUF metadata instead (``edge_fetch.py``). Raises
    IntegrityError (or the store's error) and leaves ``out`` untouched on any failure.
    """
    names = ReleaseNames(model_name, version, prefix)
    manifest = checked_manifest(
        cdn.get_bytes(names.manifest(file_name)),
        cdn.get_bytes(names.signature(file_name)),
        public_key,
        names,
        file_name,
    )
    out = Path(out)
    with fetch_workdir(out) as tmp:
        big_path = Path(tmp) / "part.big"
        cdn.download_limited(names.big(file_name), big_path, manifest.big.size)
        assemble_model(api, names, manifest, big_path, out, model_secret, hardware)
    return manifest


def _check(what: str, size: int, sha256: str, expected) -> None:
    if size != expected.size or sha256 != expected.sha256:
        raise IntegrityError(
            f"{what} does not match the signed manifest (size {size} vs {expected.size}, "
            f"sha256 {sha256[:12]}… vs {expected.sha256[:12]}…); refusing to write anything"
        )
