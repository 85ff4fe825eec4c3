"""Load a published release back the way an edge device does, and prove the model still works."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from azaion_pipeline.lib.api_client import AzaionApiClient
from azaion_pipeline.lib.cdn import CdnStore
from azaion_pipeline.lib.distribution import fetch_artifact


@dataclass(frozen=True)
class RoundtripResult:
    file_name: str
    sha256: str
    matches_export: bool
    onnx_output_shape: tuple[int, ...] | None = None


def run_onnx_once(model_path: Path, imgsz: int, image: Path | None = None) -> tuple[int, ...]:
    """One inference on ``image`` (or a mid-grey frame); returns the first output's shape."""
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    if image is not None:
        from PIL import Image

        pixels = np.asarray(Image.open(image).convert("RGB").resize((imgsz, imgsz)), np.float32)
        batch = pixels.transpose(2, 0, 1)[None] / 255.0
    else:
        batch = np.full((1, 3, imgsz, imgsz), 0.5, np.float32)
    model_input = session.get_inputs()[0]
    return tuple(session.run(None, {model_input.name: batch})[0].shape)


def verify_release(
    api: AzaionApiClient,
    cdn: CdnStore,
    *,
    model_name: str,
    version: str,
    expected_sha256: dict[str, str],
    model_secret: str,
    public_key: str,
    imgsz: int,
    image: Path | None = None,
    prefix: str = "models",
) -> list[RoundtripResult]:
    """Fetch every file in ``expected_sha256`` (file name → export hash); run the ONNX one."""
    results = []
    with tempfile.TemporaryDirectory(prefix="azaion-roundtrip-") as tmp:
        for file_name, sha256 in expected_sha256.items():
            out = Path(tmp) / file_name
            manifest = fetch_artifact(
                api,
                cdn,
                model_name=model_name,
                file_name=file_name,
                out=out,
                model_secret=model_secret,
                public_key=public_key,
                version=version,
                prefix=prefix,
            )
            shape = run_onnx_once(out, imgsz, image) if file_name.endswith(".onnx") else None
            results.append(
                RoundtripResult(
                    file_name, manifest.plaintext.sha256, manifest.plaintext.sha256 == sha256, shape
                )
            )
    return results
