"""published_model: encrypt, split and upload every available export; roundtrip_ok loads it back."""

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
)
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.api_client import ApiError
from azaion_pipeline.lib.cdn import CdnError
from azaion_pipeline.lib.champion import promote_champion
from azaion_pipeline.lib.distribution import IntegrityError, Release, read_pointer
from azaion_pipeline.lib.evaluate import IMAGE_SUFFIXES, split_images_dir
from azaion_pipeline.lib.export import ExportedModel, TensorrtExport
from azaion_pipeline.lib.hashing import sha256_text
from azaion_pipeline.lib.parts import SMALL_SIZE_KB
from azaion_pipeline.lib.release_manifest import ManifestError
from azaion_pipeline.lib.roundtrip import verify_release

PUBLISH_ERRORS = (ApiError, CdnError, IntegrityError, ManifestError, OSError, ValueError)


class PublishConfig(ReleaseLocation):
    """Where the release goes and how much of each file stays on the API (.small)."""

    small_size_kb: int = Field(
        default=SMALL_SIZE_KB, ge=1, description="KiB of each encrypted file kept in .small."
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
        "pointer_uri": record.pointer_uri,
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
        "(API) and .big (CDN), with a signed manifest; the 'current' pointer moves last."
    ),
)
def published_model(
    context: dg.AssetExecutionContext,
    azaion_api: AzaionApi,
    azaion_cdn: AzaionCdn,
    publish_keys: PublishKeys,
    storage: AzaionStorage,
    onnx_model: ExportedModel,
    coreml_model: ExportedModel,
    tensorrt_model: TensorrtExport,
) -> dg.Output[Release]:
    config = config_of(context, PublishConfig)
    source = onnx_model.source
    exports = _exports_of_one_model(
        context, onnx_model, {"coreml_model": coreml_model, "tensorrt_model": tensorrt_model.engine}
    )
    previous = None
    try:
        previous = read_pointer(azaion_cdn.upload_store(), config.model_name, config.prefix)
        with tempfile.TemporaryDirectory(prefix="azaion-publish-") as workdir:
            release = azaion_api.upload_big_small(
                azaion_cdn,
                publish_keys,
                exports,
                Path(workdir),
                model_name=config.model_name,
                prefix=config.prefix,
                small_size_kb=config.small_size_kb,
                previous_version=previous.version if previous else None,
            )
    except PUBLISH_ERRORS as exc:
        kept = previous.version if previous else "no release"
        raise dg.Failure(
            description=f"publishing model {source.model_version} failed: {exc}. "
            f"The pointer did not move; {kept} stays current."
        ) from exc

    # Only now, with the pointer moved, is this model the one edge devices load.
    promote_champion(
        storage.layout(),
        source.weights_path,
        weights_sha256=source.weights_sha256,
        model_version=source.model_version,
        dataset_version=source.dataset_version,
        metrics={"test_map50_95": source.test.map50_95 if source.test else 0.0},
    )
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
    for split in ("test", "val", "train"):
        folder = split_images_dir(data_yaml, split)
        images = (
            sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if folder.is_dir()
            else []
        )
        if images:
            return images[0]
    return None


@dg.asset_check(
    asset=published_model,
    description=(
        "Loads the release back like an edge device (downloader keys, hardware-bound .small), "
        "verifies signature and hashes, decrypts, compares with the exports, runs the ONNX once."
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
