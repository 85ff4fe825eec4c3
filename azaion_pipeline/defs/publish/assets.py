"""published_model: stage every available export, round-trip it, then point a channel at it.

roundtrip_ok loads the release back again afterwards, as a post-check.
"""

import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.lineage import upstream_metadata
from azaion_pipeline.defs.publish.resources import (
    AzaionApi,
    AzaionCdn,
    PublishKeys,
    ReleaseMetadata,
)
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.champion import promote_champion
from azaion_pipeline.lib.channels import served_version
from azaion_pipeline.lib.distribution import Artifact
from azaion_pipeline.lib.hashing import sha256_text
from azaion_pipeline.lib.release_flow import TRANSFER_ERRORS, publish_verified
from azaion_pipeline.lib.roundtrip import verify_release
from azaion_pipeline.lib.tuf_repo import CHANNELS, TufError, metadata_prefix

PUBLISH_ERRORS = (*TRANSFER_ERRORS, TufError, ValueError)
# Export asset → (format label, the file name clients ask for). TensorRT keeps its GPU-specific name.
EXPORTS = {
    "onnx_model": ("onnx", "azaion.onnx"),
    "coreml_model": ("coreml", "azaion.mlpackage.zip"),
    "tensorrt_model": ("tensorrt", None),
}


class PublishConfig(dg.Config):
    model_name: str = "azaion"
    prefix: str = "models"
    small_size_kb: int = 3
    channel: str = Field(
        "canary",
        description=f"the channel ({', '.join(CHANNELS)}) that serves the release once its "
        "round trip passed",
    )


def _latest(context, asset_key: str) -> dict[str, Any] | None:
    try:
        return upstream_metadata(context, asset_key)
    except dg.Failure:
        return None


def _exports(context: dg.AssetExecutionContext, model_version: str) -> list[Artifact]:
    """ONNX is required; CoreML and TensorRT are added when their latest export is of this model."""
    artifacts = []
    for asset_key, (fmt, file_name) in EXPORTS.items():
        meta = (
            upstream_metadata(context, asset_key) if fmt == "onnx" else _latest(context, asset_key)
        )
        if meta is None or meta.get("model_version") != model_version:
            context.log.info(f"not publishing {asset_key}: no export of model {model_version}")
            continue
        path = Path(meta["path"])
        artifacts.append(Artifact(fmt, path, file_name or path.name))
    return artifacts


@dg.asset(
    group_name="publish",
    kinds={"s3", "python"},
    deps=["trained_model", "onnx_model", "coreml_model"],
    description=(
        "Every available export of the trained model, encrypted Azaion-style, split into .small "
        "(API) and .big (CDN) with signed manifests; loaded back like an edge device, and only "
        "then served on a channel through new TUF metadata."
    ),
)
def published_model(
    context: dg.AssetExecutionContext,
    config: PublishConfig,
    azaion_api: AzaionApi,
    azaion_cdn: AzaionCdn,
    publish_keys: PublishKeys,
    release_metadata: ReleaseMetadata,
    storage: AzaionStorage,
) -> dg.MaterializeResult:
    trained = upstream_metadata(context, "trained_model")
    onnx = upstream_metadata(context, "onnx_model")
    if onnx.get("model_version") != trained["model_version"]:
        raise dg.Failure(
            description=f"onnx_model was exported from model {onnx.get('model_version')}, but "
            f"trained_model is {trained['model_version']}: materialize onnx_model first."
        )
    artifacts = _exports(context, trained["model_version"])
    imgsz = int(onnx.get("imgsz", 640))
    previous = None
    try:
        repo = release_metadata.repository(
            azaion_cdn, config.model_name, config.channel, config.prefix
        )
        current = repo.targets()
        previous = served_version(current.signed if current else None)
        with tempfile.TemporaryDirectory(prefix="azaion-publish-") as workdir:
            release = publish_verified(
                azaion_api.client(),
                azaion_cdn.upload_store(),
                azaion_cdn.download_store(),
                repo,
                artifacts,
                signing_key=publish_keys.signing_key,
                model_secret=publish_keys.model_key,
                imgsz=imgsz,
                image=_sample_image(context),
                model_name=config.model_name,
                model_version=trained["model_version"],
                dataset_version=trained.get("dataset_version"),
                metrics={"test_map50_95": float(trained.get("test_map50_95", 0.0))},
                workdir=Path(workdir),
                prefix=config.prefix,
                small_size_kb=config.small_size_kb,
            )
    except PUBLISH_ERRORS as exc:
        kept = previous or "no release"
        raise dg.Failure(
            description=f"publishing model {trained['model_version']} failed: {exc}. "
            f"The {config.channel} channel did not move; {kept} stays current."
        ) from exc

    # Only now, with the channel serving it, is this model the one edge devices load.
    promote_champion(
        storage.layout(),
        Path(trained["weights_path"]),
        weights_sha256=trained["weights_sha256"],
        model_version=trained["model_version"],
        dataset_version=trained.get("dataset_version"),
        metrics={"test_map50_95": trained.get("test_map50_95", 0.0)},
    )
    staged = release.staged
    metadata: dict[str, Any] = {
        "version": staged.names.version,
        "channel": config.channel,
        "targets_version": release.move.targets_version,
        "tuf_metadata_uri": repo.cdn.uri(
            metadata_prefix(config.model_name, config.channel, config.prefix)
        ),
        "model_name": config.model_name,
        "prefix": config.prefix,
        "model_version": trained["model_version"],
        "dataset_version": str(trained.get("dataset_version")),
        "previous_version": previous or "",
        "formats": ",".join(a.manifest.format for a in staged.artifacts),
        "imgsz": imgsz,
    }
    for item in staged.artifacts:
        m, fmt = item.manifest, item.manifest.format
        metadata |= {
            f"{fmt}_file_name": m.file_name,
            f"{fmt}_sha256": m.plaintext.sha256,
            f"{fmt}_size_bytes": m.plaintext.size,
            f"{fmt}_big_uri": item.big_uri,
            f"{fmt}_big_size": m.big.size,
            f"{fmt}_big_sha256": m.big.sha256,
            f"{fmt}_small_uri": item.small_uri,
            f"{fmt}_small_size": m.small.size,
            f"{fmt}_small_sha256": m.small.sha256,
            f"{fmt}_manifest_uri": item.manifest_uri,
        }
    hashes = sorted(
        f"{a.manifest.file_name}:{a.manifest.plaintext.sha256}" for a in staged.artifacts
    )
    return dg.MaterializeResult(
        metadata=metadata, data_version=dg.DataVersion(sha256_text(hashes)[:16])
    )


def _sample_image(context) -> Path | None:
    dataset = _latest(context, "training_dataset")
    if not dataset or not dataset.get("dataset_dir"):
        return None
    for split in ("test", "valid", "train"):
        images = sorted((Path(dataset["dataset_dir"]) / split / "images").glob("*.jpg"))
        if images:
            return images[0]
    return None


@dg.asset_check(
    asset=published_model,
    description=(
        "Post-check: loads the published release back like an edge device (downloader keys, "
        "hardware-bound .small), verifies signature and hashes, decrypts, compares with the "
        "exports, runs the ONNX once. A transfer error fails the check; it never crashes."
    ),
)
def roundtrip_ok(
    context: dg.AssetCheckExecutionContext,
    azaion_api: AzaionApi,
    azaion_cdn: AzaionCdn,
    publish_keys: PublishKeys,
) -> dg.AssetCheckResult:
    published = upstream_metadata(context, "published_model")
    formats = published["formats"].split(",")
    export_hashes = {
        published[f"{fmt}_file_name"]: (_latest(context, asset) or {}).get("sha256", "")
        for asset, (fmt, _) in EXPORTS.items()
        if fmt in formats
    }
    try:
        results = verify_release(
            azaion_api.client(),
            azaion_cdn.download_store(),
            model_name=published["model_name"],
            version=published["version"],
            expected_sha256=export_hashes,
            model_secret=publish_keys.model_key,
            public_key=publish_keys.public_key(),
            imgsz=int(published["imgsz"]),
            image=_sample_image(context),
            prefix=published["prefix"],
        )
    except PUBLISH_ERRORS as exc:
        return dg.AssetCheckResult(passed=False, description=f"roundtrip failed: {exc}")
    mismatched = [r.file_name for r in results if not r.matches_export]
    return dg.AssetCheckResult(
        passed=not mismatched,
        description="every part decrypts to the export"
        if not mismatched
        else f"differs: {mismatched}",
        metadata={
            "files": ",".join(r.file_name for r in results),
            "onnx_output_shape": str(
                next((r.onnx_output_shape for r in results if r.onnx_output_shape), "")
            ),
        },
    )
