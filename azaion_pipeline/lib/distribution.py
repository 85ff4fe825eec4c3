"""Publish and fetch orchestration: encrypt → split → ``.big`` to the CDN → ``.small`` to the API →
signed manifest → move the "current" pointer, last; and the reverse, verifying before decrypting.

Object names are versioned and never overwritten, so a failure at any step leaves the previous
release current, and a rollback is just a pointer move.

CDN keys:  {prefix}/{model}/{version}/{file}.big | .manifest.json | .manifest.sig,
           {prefix}/{model}/{version}/signing.pub | release.json (written once the version is complete),
           {prefix}/{model}/current.json (the pointer)
API files: folder {prefix}/{model}/{version}, name {file}.small
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from azaion_pipeline.lib.api_client import AzaionApiClient
from azaion_pipeline.lib.cdn import CdnStore
from azaion_pipeline.lib.crypto import DecryptionError, decrypt_stream, model_key_string
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
POINTER = "current.json"
# Written after every part of a version is up: versions without it are partial, never current.
RELEASE_RECORD = "release.json"
SIGNING_PUB = "signing.pub"
MANIFEST_SUFFIX = ".manifest.json"
SIGNATURE_SUFFIX = ".manifest.sig"


class IntegrityError(RuntimeError):
    """What was downloaded is not what was published: nothing was written."""


class Pointer(BaseModel):
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
    """published_model's output: one published version of one model, every export in it."""

    version: str
    model_name: str
    prefix: str
    pointer_uri: str
    previous_version: str | None
    artifacts: tuple[PublishedArtifact, ...] = Field(min_length=1)

    @property
    def source(self) -> TrainedWeights:
        """The trained weights every artifact was exported from."""
        return self.artifacts[0].export.source


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


def pointer_key(model_name: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}/{model_name}/{POINTER}"


def new_version(model_version: str, now: datetime | None = None) -> str:
    """Sortable by time, traceable to the weights, safe as an S3 key and a folder name."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{re.sub(r'[^A-Za-z0-9._-]', '_', model_version)[:24]}"


def publish_release(
    api: AzaionApiClient,
    cdn: CdnStore,
    exports: Sequence[ExportedModel],
    *,
    model_name: str,
    model_secret: str,
    signing_key: str,
    workdir: Path,
    prefix: str = DEFAULT_PREFIX,
    small_size_kb: int = SMALL_SIZE_KB,
    previous_version: str | None = None,
) -> Release:
    """Publish ``exports`` (all of one trained model) as a new version; ``previous_version`` is
    the release it replaces, kept in the record for rollback and the UI."""
    if not exports:
        raise ValueError("nothing to publish: no exports given")
    source = exports[0].source
    mixed = sorted({e.model_version for e in exports} - {source.model_version})
    if mixed:
        raise ValueError(f"exports of models {mixed} mixed with {source.model_version}")
    metrics = {"test_map50_95": source.test.map50_95 if source.test else 0.0}
    names = ReleaseNames(model_name, new_version(source.model_version), prefix)
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
    pointer = Pointer(
        model_name=model_name,
        version=names.version,
        model_version=source.model_version,
        files=[a.manifest.file_name for a in published],
    )
    cdn.put_bytes(f"{names.folder}/{RELEASE_RECORD}", pointer.model_dump_json().encode())
    # The pointer moves last: until this single PUT lands, clients keep the previous release.
    pointer_uri = cdn.put_bytes(pointer_key(model_name, prefix), pointer.model_dump_json().encode())
    return Release(
        version=names.version,
        model_name=model_name,
        prefix=prefix,
        pointer_uri=pointer_uri,
        previous_version=previous_version,
        artifacts=tuple(published),
    )


def read_pointer(cdn: CdnStore, model_name: str, prefix: str = DEFAULT_PREFIX) -> Pointer | None:
    key = pointer_key(model_name, prefix)
    if not cdn.exists(key):
        return None
    try:
        return Pointer.model_validate_json(cdn.get_bytes(key))
    except ValidationError as exc:
        raise IntegrityError(f"{cdn.uri(key)} is not a valid pointer: {exc}") from exc


def list_versions(cdn: CdnStore, model_name: str, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Complete versions only, oldest first; a version a failed publish left half-way is not one."""
    root = f"{prefix}/{model_name}/"
    return sorted(
        key[len(root) :].removesuffix(f"/{RELEASE_RECORD}")
        for key in cdn.list_keys(root)
        if key.endswith(f"/{RELEASE_RECORD}") and key.count("/") == root.count("/") + 1
    )


def rollback(
    cdn: CdnStore, model_name: str, version: str | None = None, prefix: str = DEFAULT_PREFIX
) -> Pointer:
    """Point "current" at ``version`` (default: the complete release before the current one)."""
    current = read_pointer(cdn, model_name, prefix)
    versions = list_versions(cdn, model_name, prefix)
    if version is None:
        if current is None or current.version not in versions:
            raise ValueError(f"no current release of {model_name} to roll back from")
        earlier = versions[: versions.index(current.version)]
        if not earlier:
            raise ValueError(
                f"{current.version} is the first release of {model_name}; nothing earlier"
            )
        version = earlier[-1]
    if version not in versions:
        raise ValueError(
            f"{model_name} has no complete release {version!r} (known: {', '.join(versions)})"
        )
    record = cdn.get_bytes(f"{ReleaseNames(model_name, version, prefix).folder}/{RELEASE_RECORD}")
    pointer = Pointer.model_validate_json(record).model_copy(
        update={"updated_at": datetime.now(UTC).isoformat()}
    )
    cdn.put_bytes(pointer_key(model_name, prefix), pointer.model_dump_json().encode())
    return pointer


def fetch_artifact(
    api: AzaionApiClient,
    cdn: CdnStore,
    *,
    model_name: str,
    file_name: str,
    out: Path,
    model_secret: str,
    public_key: str,
    version: str | None = None,
    hardware: str | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> ArtifactManifest:
    """Download both parts, verify signature and hashes, then decrypt to ``out`` atomically.

    Raises IntegrityError (or the store's error) and leaves ``out`` untouched on any failure.
    """
    if version is None:
        pointer = read_pointer(cdn, model_name, prefix)
        if pointer is None:
            raise IntegrityError(f"{model_name} has never been published (no {POINTER})")
        version = pointer.version
    names = ReleaseNames(model_name, version, prefix)
    try:
        manifest = verify_manifest(
            cdn.get_bytes(names.manifest(file_name)),
            cdn.get_bytes(names.signature(file_name)),
            public_key,
        )
    except ManifestError as exc:
        raise IntegrityError(f"{file_name} {version}: {exc}") from exc
    if (manifest.model_name, manifest.version, manifest.file_name) != (
        model_name,
        version,
        file_name,
    ):
        raise IntegrityError(f"manifest at {names.manifest(file_name)} describes another artifact")
    small = api.load_bytes(names.folder, names.small(file_name), hardware)
    _check("small part", len(small), hashlib.sha256(small).hexdigest(), manifest.small)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        big_path = Path(tmp) / "part.big"
        cdn.download_file(names.big(file_name), big_path)
        _check("big part", big_path.stat().st_size, sha256_file(big_path), manifest.big)
        plain_path = Path(tmp) / "model"
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
    return manifest


def _check(what: str, size: int, sha256: str, expected) -> None:
    if size != expected.size or sha256 != expected.sha256:
        raise IntegrityError(
            f"{what} does not match the signed manifest (size {size} vs {expected.size}, "
            f"sha256 {sha256[:12]}… vs {expected.sha256[:12]}…); refusing to write anything"
        )
