"""Verify, then point: stage a release, load it back as an edge device would, only then serve it.

A release whose staging or round trip fails is never served: the channel keeps serving what it
served, and the publish removes what it staged on both sides (a publish that was killed leaves that
to the cleanup job). Once served, the release's folder on the API is sealed: its names are immutable.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from azaion_pipeline.lib.api_client import ApiError, AzaionApiClient
from azaion_pipeline.lib.cdn import CdnError, CdnStore
from azaion_pipeline.lib.channels import point_channel, release_targets, served_version
from azaion_pipeline.lib.cleanup import discard_release
from azaion_pipeline.lib.distribution import (
    DEFAULT_PREFIX,
    IntegrityError,
    Release,
    ReleaseNames,
    name_release,
    stage_release,
)
from azaion_pipeline.lib.export import ExportedModel
from azaion_pipeline.lib.release_manifest import ManifestError, public_key_text
from azaion_pipeline.lib.roundtrip import verify_release
from azaion_pipeline.lib.tuf_repo import TufError, TufRepository

log = logging.getLogger(__name__)
# What a failed transfer or a failed check raises anywhere on the way.
TRANSFER_ERRORS = (ApiError, CdnError, IntegrityError, ManifestError, OSError)


class RoundtripFailed(IntegrityError):
    """The staged release did not load back to the exports; no channel moved."""


def publish_verified(
    api: AzaionApiClient,
    upload: CdnStore,
    download: CdnStore,
    repo: TufRepository,
    exports: Sequence[ExportedModel],
    *,
    signing_key: str,
    model_secret: str,
    model_name: str,
    prefix: str = DEFAULT_PREFIX,
    admin: AzaionApiClient | None = None,
    image: Path | None = None,
    **stage,
) -> Release:
    """``stage`` goes to ``stage_release`` (workdir, small_size_kb, evaluation).

    ``admin`` (an Admin or ApiAdmin on the API) removes the ``.small`` parts of a failed publish.
    """
    names = name_release(exports, model_name, prefix)
    public_key = public_key_text(signing_key)
    pointing = False
    try:
        staged = stage_release(
            api, upload, exports, names, model_secret=model_secret, signing_key=signing_key, **stage
        )
        _round_trip(api, download, repo, names, exports, model_secret, public_key, image)
        pointing = True
        move = point_channel(repo, release_targets(upload, names, repo.channel, public_key))
    except BaseException:  # a killed run too: whatever stops it here, nobody is served this release
        if not pointing or not _may_be_served(repo, names):
            discard_release(upload, names, [e.file.path.name for e in exports], admin)
        raise
    _seal(api, names)
    return Release(
        version=names.version,
        model_name=names.model_name,
        prefix=names.prefix,
        channel=move.channel,
        targets_version=move.targets_version,
        previous_version=move.previous,
        artifacts=staged.artifacts,
    )


def _round_trip(
    api: AzaionApiClient,
    download: CdnStore,
    repo: TufRepository,
    names: ReleaseNames,
    exports: Sequence[ExportedModel],
    model_secret: str,
    public_key: str,
    image: Path | None,
) -> None:
    try:
        # Downloader keys and this machine's hardware binding: exactly what a device uses.
        results = verify_release(
            api,
            download,
            model_name=names.model_name,
            version=names.version,
            expected_sha256={e.file.path.name: e.file.sha256 for e in exports},
            model_secret=model_secret,
            public_key=public_key,
            imgsz=next((e.imgsz for e in exports if e.file.format == "onnx"), exports[0].imgsz),
            image=image,
            prefix=names.prefix,
        )
    except TRANSFER_ERRORS as exc:
        raise RoundtripFailed(
            f"the staged release {names.version} did not load back ({exc}); "
            f"the {repo.channel} channel did not move"
        ) from exc
    differing = [r.file_name for r in results if not r.matches_export]
    if differing:
        raise RoundtripFailed(
            f"the staged release {names.version} loads back different bytes for {differing}; "
            f"the {repo.channel} channel did not move"
        )


def _may_be_served(repo: TufRepository, names: ReleaseNames) -> bool:
    """After a failed move: does the channel serve it anyway (the last write landed unanswered)?"""
    try:
        current = repo.targets()
    except (CdnError, TufError):  # cannot tell: keep everything, the cleanup job decides later
        return True
    return served_version(current.signed if current else None) == names.version


def _seal(api: AzaionApiClient, names: ReleaseNames) -> None:
    """The channel serves the release now, so a failure here only leaves the sealing to cleanup."""
    try:
        api.seal(names.folder)
    except ApiError as exc:
        log.warning("could not seal %s on the API (the cleanup job will): %s", names.folder, exc)
