"""TUF metadata for published releases (python-tuf's Metadata API), one TUF repository per channel.

CDN keys, beside the release objects (whose layout does not change):
  {prefix}/{model}/tuf/{channel}/{N}.root.json       root, signed by the root key
  {prefix}/{model}/tuf/{channel}/{N}.snapshot.json   consistent snapshots: written once, never changed
  {prefix}/{model}/tuf/{channel}/{N}.targets.json
  {prefix}/{model}/tuf/{channel}/timestamp.json      the only object ever overwritten
  {prefix}/{model}/tuf/{channel}/root.json           a copy of the newest root, for the publisher

A channel's targets are the objects of the release it serves, named as inside the release folder
("azaion.onnx.big", "azaion.onnx.manifest.json", "release.json"), each with its length, its sha256
and custom {"channel", "version"}: a device finds the folder from it and refuses another channel's
files. Every change, a rollback included, is new metadata with a higher version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from securesystemslib.signer import CryptoSigner
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization import DeserializationError

from azaion_pipeline.lib.cdn import CdnError, CdnStore
from azaion_pipeline.lib.release_manifest import generate_signing_key, load_private_key

CHANNELS = ("canary", "stable")
CHANNEL_PATTERN = "^(" + "|".join(CHANNELS) + ")$"
TUF_FOLDER = "tuf"  # {prefix}/{model}/tuf/: beside the release folders, never one of them
ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
# The private key of each role, from the environment or a secret store (never a file in the repo).
KEY_ENV = {role: f"AZAION_TUF_{role.upper()}_KEY" for role in ROLES}
# The root key a rotation replaces (only while rotating): it co-signs the new root.
PREVIOUS_ROOT_KEY_ENV = "AZAION_TUF_PREVIOUS_ROOT_KEY"
# Signed into root: how long past its expiry an offline device may keep its installed model.
GRACE_FIELD = "x-azaion-offline-grace-s"
# Signed into root by a rotation that changed the targets key: the first targets version signed by
# the new key. Older targets were signed by a retired key and are no longer history to roll back to.
TARGETS_SINCE_FIELD = "x-azaion-targets-since"


class TufError(RuntimeError):
    """The release metadata cannot be read or changed as asked."""


@dataclass(frozen=True)
class TufPolicy:
    timestamp_expiry: timedelta = timedelta(days=7)
    metadata_expiry: timedelta = timedelta(days=365)  # root, snapshot and targets
    offline_grace: timedelta = timedelta(days=3)


def generate_tuf_keys() -> dict[str, str]:
    """A fresh Ed25519 private key per role, keyed by its environment variable (devstack, tests)."""
    return {env: generate_signing_key()[0] for env in KEY_ENV.values()}


def load_signer(key_text: str) -> CryptoSigner:
    """A signer from a private key (base64 raw Ed25519 or PEM)."""
    return CryptoSigner(load_private_key(key_text))


def load_signers(key_texts: dict[str, str]) -> dict[str, CryptoSigner]:
    """Role → signer, from the private keys keyed by role."""
    return {role: load_signer(key_texts[role]) for role in ROLES}


def public_key_id(signer: CryptoSigner) -> str:
    return signer.public_key.keyid


def metadata_prefix(model_name: str, channel: str, prefix: str) -> str:
    if channel not in CHANNELS:
        raise TufError(f"unknown channel {channel!r}; channels: {', '.join(CHANNELS)}")
    return f"{prefix}/{model_name}/{TUF_FOLDER}/{channel}/"


def release_target(path: str, data_or_digest, channel: str, version: str) -> TargetFile:
    """A target from the bytes themselves, or from a (size, sha256) digest already signed elsewhere."""
    custom = {"custom": {"channel": channel, "version": version}}
    if isinstance(data_or_digest, bytes):
        target = TargetFile.from_data(path, data_or_digest, ["sha256"])
        return TargetFile(target.length, target.hashes, path, custom)
    size, sha256 = data_or_digest
    return TargetFile(size, {"sha256": sha256}, path, custom)


class TufRepository:
    """The publisher's side of one channel: reads what is on the CDN, signs new versions."""

    def __init__(
        self,
        cdn: CdnStore,
        model_name: str,
        channel: str,
        signers: dict[str, CryptoSigner],
        prefix: str,
        policy: TufPolicy | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.cdn = cdn
        self.channel = channel
        self.base = metadata_prefix(model_name, channel, prefix)
        self.signers = signers
        self.policy = policy or TufPolicy()
        self._now = now

    def _read(self, name: str) -> Metadata | None:
        key = self.base + name
        if not self.cdn.exists(key):
            return None
        try:
            return Metadata.from_bytes(self.cdn.get_bytes(key))
        except DeserializationError as exc:
            raise TufError(f"{self.cdn.uri(key)} is not TUF metadata: {exc}") from exc

    def _sign_and_write(
        self, metadata: Metadata, *names: str, co_signer: CryptoSigner | None = None
    ) -> bytes:
        """Versioned names are written once: finding one taken means another publish raced us."""
        for name in names:
            if name[0].isdigit() and self.cdn.exists(self.base + name):
                raise TufError(
                    f"{self.cdn.uri(self.base + name)} already exists: another publish or "
                    "rollback of this channel ran at the same time; run this one again"
                )
        metadata.sign(self.signers[metadata.signed.type])
        if co_signer is not None:
            metadata.sign(co_signer, append=True)
        data = metadata.to_bytes()
        for name in names:
            self.cdn.put_bytes(self.base + name, data)
        return data

    def _expires(self, role: str) -> datetime:
        expiry = (
            self.policy.timestamp_expiry if role == Timestamp.type else self.policy.metadata_expiry
        )
        return (self._now() + expiry).replace(microsecond=0)

    def root(self) -> Metadata[Root]:
        """The channel's root: created on first use, re-signed when the grace setting changes."""
        current = self._read("root.json")
        grace_s = int(self.policy.offline_grace.total_seconds())
        if current is not None:
            root: Root = current.signed
            for role in ROLES:
                if root.roles[role].keyids != [public_key_id(self.signers[role])]:
                    raise TufError(
                        f"the {KEY_ENV[role]} in the environment is not the {role} key of the "
                        f"published root {self.cdn.uri(self.base)}root.json; rotate the root first"
                    )
            renew_by = self._now() + 2 * self.policy.timestamp_expiry
            if root.unrecognized_fields.get(GRACE_FIELD) == grace_s and root.expires > renew_by:
                return current
            root.version += 1
        else:
            root = Root(expires=self._expires(Root.type), consistent_snapshot=True)
            for role in ROLES:
                root.add_key(self.signers[role].public_key, role)
            current = Metadata(root)
        root.unrecognized_fields[GRACE_FIELD] = grace_s
        root.expires = self._expires(Root.type)
        current.signatures.clear()
        self._sign_and_write(current, f"{root.version}.root.json", "root.json")
        return current

    def rotate_root(self, previous_root: CryptoSigner) -> int:
        """A new root keyed to the environment's keys, co-signed by the ``previous_root`` key so
        devices that trust the current root follow it (ngclient checks both signatures); then the
        channel's current targets are signed again with the new keys. Returns the new root version.
        """
        current = self._read("root.json")
        if current is None:
            raise TufError(f"nothing published on {self.cdn.uri(self.base)} yet; nothing to rotate")
        root: Root = current.signed
        if root.roles[Root.type].keyids != [public_key_id(previous_root)]:
            raise TufError(
                f"the {PREVIOUS_ROOT_KEY_ENV} in the environment is not the root key of "
                f"{self.cdn.uri(self.base)}root.json"
            )
        targets_rotated = root.roles[Targets.type].keyids != [
            public_key_id(self.signers[Targets.type])
        ]
        for role in ROLES:
            for keyid in list(root.roles[role].keyids):
                root.revoke_key(keyid, role)
            root.add_key(self.signers[role].public_key, role)
        served = self.targets()
        if targets_rotated:
            root.unrecognized_fields[TARGETS_SINCE_FIELD] = (
                served.signed.version + 1 if served else 1
            )
        root.version += 1
        root.expires = self._expires(Root.type)
        root.unrecognized_fields[GRACE_FIELD] = int(self.policy.offline_grace.total_seconds())
        current.signatures.clear()
        self._sign_and_write(
            current, f"{root.version}.root.json", "root.json", co_signer=previous_root
        )
        if served is not None:
            self.point(served.signed.targets)
        return root.version

    def targets(self) -> Metadata[Targets] | None:
        """What the channel serves now (as published; devices verify it themselves)."""
        timestamp = self._read("timestamp.json")
        if timestamp is None:
            return None
        snapshot_version = timestamp.signed.snapshot_meta.version
        snapshot = self._read(f"{snapshot_version}.snapshot.json")
        if snapshot is None:
            raise TufError(f"{self.base}timestamp.json names a missing snapshot {snapshot_version}")
        targets_version = snapshot.signed.meta["targets.json"].version
        return self._read(f"{targets_version}.targets.json")

    def unreferenced(self) -> list[str]:
        """Keys of versioned targets and snapshots newer than ``timestamp.json`` references: what a
        publish that died half-way through ``point`` left. They serve nobody, but block their version
        numbers (written once) until removed."""
        timestamp = self._read("timestamp.json")
        current = {"snapshot.json": 0, "targets.json": 0}
        if timestamp is not None:
            current["snapshot.json"] = timestamp.signed.snapshot_meta.version
            targets = self.targets()
            current["targets.json"] = targets.signed.version if targets else 0
        keys = []
        for key in self.cdn.list_keys(self.base):
            number, _, role_file = key[len(self.base) :].partition(".")
            if number.isdigit() and int(number) > current.get(role_file, int(number)):
                keys.append(key)
        return sorted(keys)

    def history(self) -> Iterator[Targets]:
        """Every targets version this channel ever served, newest first, each signature checked."""
        current = self.targets()
        if current is None:
            return
        root = self.root()
        since = root.signed.unrecognized_fields.get(TARGETS_SINCE_FIELD, 1)
        for version in range(current.signed.version, since - 1, -1):
            metadata = self._read(f"{version}.targets.json")
            if metadata is None:
                continue
            try:
                root.signed.verify_delegate(
                    Targets.type, metadata.signed_bytes, metadata.signatures
                )
            except UnsignedMetadataError as exc:
                raise TufError(f"{self.base}{version}.targets.json is not signed by us") from exc
            yield metadata.signed

    def point(self, targets: dict[str, TargetFile]) -> int:
        """Serve these targets: new targets, snapshot and timestamp versions. Returns the targets version."""
        self.root()
        current = self.targets()
        signed = Targets(
            version=current.signed.version + 1 if current else 1,
            expires=self._expires(Targets.type),
            targets=targets,
        )
        data = self._sign_and_write(Metadata(signed), f"{signed.version}.targets.json")
        self._write_snapshot_and_timestamp(signed.version, data)
        return signed.version

    def _write_snapshot_and_timestamp(self, targets_version: int, targets_data: bytes) -> None:
        previous = self._read("timestamp.json")
        snapshot = Snapshot(
            version=previous.signed.snapshot_meta.version + 1 if previous else 1,
            expires=self._expires(Snapshot.type),
            meta={"targets.json": _meta_file(targets_version, targets_data)},
        )
        data = self._sign_and_write(Metadata(snapshot), f"{snapshot.version}.snapshot.json")
        self._write_timestamp(_meta_file(snapshot.version, data), previous)

    def _write_timestamp(self, snapshot_meta: MetaFile, previous: Metadata | None) -> int:
        timestamp = Timestamp(
            version=previous.signed.version + 1 if previous else 1,
            expires=self._expires(Timestamp.type),
            snapshot_meta=snapshot_meta,
        )
        # Written last: until this one PUT lands, devices keep seeing the previous state whole.
        self._sign_and_write(Metadata(timestamp), "timestamp.json")
        return timestamp.version

    def refresh(self, renew_within: timedelta | None = None) -> int:
        """A new timestamp (the schedule's job); targets and snapshot are renewed when they expire soon.

        Returns the new timestamp version; raises TufError when the channel was never published.
        """
        previous = self._read("timestamp.json")
        current = self.targets()
        if previous is None or current is None:
            raise TufError(f"nothing published on {self.cdn.uri(self.base)} yet")
        self.root()
        horizon = self._now() + (renew_within or 2 * self.policy.timestamp_expiry)
        if current.signed.expires <= horizon:
            self.point(current.signed.targets)
            return self._read("timestamp.json").signed.version
        return self._write_timestamp(previous.signed.snapshot_meta, previous)


def _meta_file(version: int, data: bytes) -> MetaFile:
    # Length and hash pin the exact bytes, so metadata from another state cannot be mixed in.
    return MetaFile.from_data(version, data, ["sha256"])


def read_targets(cdn: CdnStore, model_name: str, channel: str, prefix: str) -> Targets | None:
    """A read-only look at what a channel serves (listing, promotion); needs no keys."""
    try:
        metadata = TufRepository(cdn, model_name, channel, {}, prefix).targets()
    except CdnError as exc:
        raise TufError(f"reading the {channel} metadata of {model_name} failed: {exc}") from exc
    return metadata.signed if metadata else None
