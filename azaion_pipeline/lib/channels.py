"""Which release each channel (canary, stable) serves: point, roll back, promote; all through TUF.

Every move signs new, higher-version metadata, so a device never has to accept a lower version:
a rollback re-points the channel at the objects of an earlier release.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuf.api.metadata import TargetFile, Targets

from azaion_pipeline.lib.cdn import CdnStore
from azaion_pipeline.lib.distribution import (
    MANIFEST_SUFFIX,
    RELEASE_RECORD,
    SIGNATURE_SUFFIX,
    IntegrityError,
    ReleaseNames,
    ReleaseRecord,
    checked_manifest,
)
from azaion_pipeline.lib.tuf_repo import TufError, TufRepository, release_target


@dataclass(frozen=True)
class ChannelMove:
    channel: str
    version: str  # the release the channel now serves
    previous: str | None  # the one it served before
    targets_version: int  # the new (always higher) TUF targets version


def served_version(targets: Targets | None) -> str | None:
    """The release folder a channel's targets point into (None: nothing served yet)."""
    if targets is None or RELEASE_RECORD not in targets.targets:
        return None
    return targets.targets[RELEASE_RECORD].custom["version"]


def release_targets(
    cdn: CdnStore, names: ReleaseNames, channel: str, public_key: str
) -> dict[str, TargetFile]:
    """Targets for every object a device reads of this release: release.json, manifests, ``.big``s.

    Each manifest's signature is checked first; the ``.big`` length and hash come from it, so the
    (possibly large) part is not read again.
    """
    record_bytes = cdn.get_bytes(names.record)
    record = ReleaseRecord.model_validate_json(record_bytes)
    targets = {RELEASE_RECORD: release_target(RELEASE_RECORD, record_bytes, channel, names.version)}
    for file_name in record.files:
        manifest_bytes = cdn.get_bytes(names.manifest(file_name))
        signature = cdn.get_bytes(names.signature(file_name))
        manifest = checked_manifest(manifest_bytes, signature, public_key, names, file_name)
        for path, content in (
            (f"{file_name}{MANIFEST_SUFFIX}", manifest_bytes),
            (f"{file_name}{SIGNATURE_SUFFIX}", signature),
            (f"{file_name}.big", (manifest.big.size, manifest.big.sha256)),
        ):
            targets[path] = release_target(path, content, channel, names.version)
    return targets


def point_channel(repo: TufRepository, targets: dict[str, TargetFile]) -> ChannelMove:
    current = repo.targets()
    previous = served_version(current.signed if current else None)
    version = targets[RELEASE_RECORD].custom["version"]
    return ChannelMove(repo.channel, version, previous, repo.point(targets))


def rollback_channel(repo: TufRepository, version: str | None = None) -> ChannelMove:
    """Serve an earlier release again (default: the one served before the current), as a new version.

    Only a release this channel already served can come back: its targets are taken from the
    channel's own signed history, so nothing unverified is ever signed.
    """
    history = list(repo.history())
    if not history:
        raise TufError(f"the {repo.channel} channel has served nothing yet; nothing to roll back")
    current = served_version(history[0])
    earlier = [t for t in history if served_version(t) != current]
    wanted = next(
        (t for t in earlier if version is None or served_version(t) == version),
        None,
    )
    if wanted is None:
        served = sorted({served_version(t) for t in history} - {current})
        raise TufError(
            f"the {repo.channel} channel never served {version or 'an earlier release'} "
            f"(current {current}; earlier: {', '.join(served) or 'none'})"
        )
    return point_channel(repo, dict(wanted.targets))


def promote(source: TufRepository, target: TufRepository) -> ChannelMove:
    """Serve on ``target`` exactly what ``source`` serves now (canary → stable)."""
    current = next(source.history(), None)  # signature-checked, unlike a plain read
    if current is None:
        raise TufError(f"the {source.channel} channel has served nothing yet; nothing to promote")
    targets = {}
    for path, info in current.targets.items():
        if info.custom["channel"] != source.channel:
            raise IntegrityError(f"{source.channel} metadata lists {path} of another channel")
        custom = {"custom": {**info.custom, "channel": target.channel}}
        targets[path] = TargetFile(info.length, info.hashes, path, custom)
    return point_channel(target, targets)
