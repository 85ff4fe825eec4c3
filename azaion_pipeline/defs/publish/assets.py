"""published_model: stage every available export, round-trip it, then point a channel at it.

roundtrip_ok loads the release back again afterwards, as a post-check.
"""

import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.config import checked, config_of
from azaion_pipeline.defs.publish.resources import (
    AzaionApi,
    AzaionCdn,
    PublishKeys,
    ReleaseLocation,
    TufMetadata,
)
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.defs.store import PipelineStore
from azaion_pipeline.lib.champion import promote_champion
from azaion_pipeline.lib.channels import served_version
from azaion_pipeline.lib.distribution import Release
from azaion_pipeline.lib.evaluate import split_images
from azaion_pipeline.lib.evaluation.promotion import ModelEvaluation
from azaion_pipeline.lib.export import ExportedModel, TensorrtExport
from azaion_pipeline.lib.hashing import sha256_text
from azaion_pipeline.lib.parts import SMALL_SIZE_KB
from azaion_pipeline.lib.release_flow import TRANSFER_ERRORS, publish_verified
from azaion_pipeline.lib.roundtrip import verify_release
from azaion_pipeline.lib.tuf_repo import CHANNEL_PATTERN, CHANNELS, TufError, metadata_prefix

PUBLISH_ERRORS = (*TRANSFER_ERRORS, TufError, ValueError)


class PublishConfig(ReleaseLocation):
    """Where the release goes and how much of each file stays on the API (.small)."""

    small_size_kb: int = Field(
        default=SMALL_SIZE_KB, ge=1, description="KiB of each encrypted file kept in .small."
    )
    channel: str = Field(
        "canary",
        pattern=CHANNEL_PATTERN,
        description=f"the channel ({', '.join(CHANNELS)}) that serves the release once its "
        "round trip passed",
    )


def release_metadata(record: Release) -> dict[str, Any]:
    """What the UI shows for a Release: lineage, and per format its file and where its parts are."""
    source = record.source
    metadata: dict[str, Any] = {
        "version": record.version,
        "model_name": record.model_name,
        "prefix": record.prefix,
        "model_version": source.model_version,
        "dataset_version": source.dataset_version,
        "previous_version": record.previous_version or "",
        "channel": record.channel,
        "targets_version": record.targets_version,
        "tuf_metadata_prefix": metadata_prefix(record.model_name, record.channel, record.prefix),
        "formats": ",".join(a.manifest.format for a in record.artifacts),
    }
    for item in record.artifacts:
        m, fmt = item.manifest, item.manifest.format
        metadata |= {
            f"{fmt}_file_name": m.file_name,
            f"{fmt}_imgsz": item.export.imgsz,
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
    return metadata


def _exports_of_one_model(
    context: dg.AssetExecutionContext,
    onnx: ExportedModel,
    optional: dict[str, ExportedModel | None],
) -> list[ExportedModel]:
    """ONNX decides the model; another export joins only when it was made from the same weights."""
    exports = [onnx]
    for name, export in optional.items():
        if export is None or export.model_version != onnx.model_version:
            context.log.info(f"not publishing {name}: no export of model {onnx.model_version}")
            continue
        exports.append(export)
    return exports


@dg.asset(
    group_name="publish",
    kinds={"s3", "python"},
    config_schema=checked(PublishConfig),
    description=(
        "Every available export of the trained model, encrypted Azaion-style, split into .small "
        "(API) and .big (CDN) with signed manifests carrying the evaluation and per-class "
        "thresholds; loaded back like an edge device, and only then served on a channel through "
        "new TUF metadata. Runs only after promotion_gate passed."
    ),
)
def published_model(
    context: dg.AssetExecutionContext,
    azaion_api: AzaionApi,
    azaion_cdn: AzaionCdn,
    publish_keys: PublishKeys,
    tuf_metadata: TufMetadata,
    storage: AzaionStorage,
    pipeline_store: PipelineStore,
    onnx_model: ExportedModel,
    coreml_model: ExportedModel,
    tensorrt_model: TensorrtExport,
    model_evaluation: ModelEvaluation,
) -> dg.Output[Release]:
    config = config_of(context, PublishConfig)
    source = onnx_model.source
    if model_evaluation.onnx_sha256 != onnx_model.file.sha256:
        raise dg.Failure(
            description=f"model_evaluation scored ONNX {model_evaluation.onnx_sha256[:12]}…, not "
            f"this export {onnx_model.file.sha256[:12]}…: materialize model_evaluation (and pass "
            "its gate) for this export first."
        )
    exports = _exports_of_one_model(
        context, onnx_model, {"coreml_model": coreml_model, "tensorrt_model": tensorrt_model.engine}
    )
    previous = None
    try:
        repo = tuf_metadata.repository(azaion_cdn, config.model_name, config.channel, config.prefix)
        current = repo.targets()
        previous = served_version(current.signed if current else None)
        with tempfile.TemporaryDirectory(prefix="azaion-publish-") as workdir:
            release = publish_verified(
                azaion_api.client(),
                azaion_cdn.upload_store(),
                azaion_cdn.download_store(),
                repo,
                exports,
                signing_key=publish_keys.signing_key,
                model_secret=publish_keys.model_key,
                admin=azaion_api.admin_client(),
                image=_sample_image(source.data_yaml),
                model_name=config.model_name,
                workdir=Path(workdir),
                prefix=config.prefix,
                small_size_kb=config.small_size_kb,
                evaluation=model_evaluation.candidate,
            )
    except PUBLISH_ERRORS as exc:
        raise dg.Failure(
            description=f"publishing model {source.model_version} failed: {exc}. "
            f"The {config.channel} channel did not move; {previous or 'no release'} stays current."
        ) from exc

    # Only now, with the channel serving it, is this model the one edge devices load.
    champion = promote_champion(
        storage.layout(),
        source.weights_path,
        weights_sha256=source.weights_sha256,
        model_version=source.model_version,
        dataset_version=source.dataset_version,
        metrics={"test_map50_95": model_evaluation.candidate.overall.ap50_95},
        onnx=onnx_model.file.path,
        onnx_sha256=onnx_model.file.sha256,
    )
    pipeline_store.share_champion(champion)  # readable by every host, GPU hosts included
    hashes = sorted(
        f"{a.manifest.file_name}:{a.manifest.plaintext.sha256}" for a in release.artifacts
    )
    return dg.Output(
        release,
        metadata=release_metadata(release),
        data_version=dg.DataVersion(sha256_text(hashes)[:16]),
    )


def _sample_image(data_yaml: Path) -> Path | None:
    """An image of the dataset the model was trained on, to run the decrypted ONNX once."""
    if not data_yaml.is_file():  # the dataset was cleaned up since: a grey image will do
        return None
    for split in ("test", "valid", "train"):
        images = split_images(data_yaml, split)
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
    azaion_api: AzaionApi,
    azaion_cdn: AzaionCdn,
    publish_keys: PublishKeys,
    published_model: Release,
) -> dg.AssetCheckResult:
    release = published_model
    export_hashes = {a.manifest.file_name: a.export.file.sha256 for a in release.artifacts}
    onnx = next(a.export for a in release.artifacts if a.manifest.format == "onnx")
    try:
        results = verify_release(
            azaion_api.client(),
            azaion_cdn.download_store(),
            model_name=release.model_name,
            version=release.version,
            expected_sha256=export_hashes,
            model_secret=publish_keys.model_key,
            public_key=publish_keys.public_key(),
            imgsz=onnx.imgsz,
            image=_sample_image(release.source.data_yaml),
            prefix=release.prefix,
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
