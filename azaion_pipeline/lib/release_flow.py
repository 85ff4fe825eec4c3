"""Verify, then point: stage a release, load it back as an edge device would, only then serve it.

A release whose round trip fails is never served: the channel keeps serving what it served, and
the staged objects stay for inspection (a publish that died half-way is the cleanup job's).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from azaion_pipeline.lib.api_client import ApiError, AzaionApiClient
from azaion_pipeline.lib.cdn import CdnError, CdnStore
from azaion_pipeline.lib.channels import point_channel, release_targets
from azaion_pipeline.lib.distribution import IntegrityError, Release, stage_release
from azaion_pipeline.lib.export import ExportedModel
from azaion_pipeline.lib.release_manifest import ManifestError, public_key_text
from azaion_pipeline.lib.roundtrip import verify_release
from azaion_pipeline.lib.tuf_repo import TufRepository

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
    image: Path | None = None,
    **stage,
) -> Release:
    """``stage`` goes to ``stage_release`` (model_name, workdir, prefix, small_size_kb)."""
    staged = stage_release(
        api, upload, exports, model_secret=model_secret, signing_key=signing_key, **stage
    )
    names, public_key = staged.names, public_key_text(signing_key)
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
    move = point_channel(repo, release_targets(upload, names, repo.channel, public_key))
    return Release(
        version=names.version,
        model_name=names.model_name,
        prefix=names.prefix,
        channel=move.channel,
        targets_version=move.targets_version,
        previous_version=move.previous,
        artifacts=staged.artifacts,
    )
