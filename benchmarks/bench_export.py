"""Export stage: seconds per format and the cost of the parity check.

Baseline: the bare ultralytics export of the same weights and arguments; ours adds the model
metadata, the content hash, the CoreML zip and the content-addressed move. The parity check
(onnxruntime vs PyTorch on the valid+test images) is printed against the ONNX export time.
Sizes: ``BENCH_EXPORT_IMAGES`` sample annotations (default 48), ``BENCH_EXPORT_IMGSZ``
(default 160); the model is a 1-epoch yolo11n (its scores do not matter for timing).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

IMAGES = int(os.environ.get("BENCH_EXPORT_IMAGES", 48))
IMGSZ = int(os.environ.get("BENCH_EXPORT_IMGSZ", 160))


def _bare_export(weights: Path, scratch: Path, **arguments) -> float:
    from ultralytics import YOLO

    local = scratch / f"bare-{arguments['format']}.pt"
    shutil.copyfile(weights, local)
    started = time.perf_counter()
    YOLO(str(local)).export(imgsz=IMGSZ, nms=True, **arguments)
    return time.perf_counter() - started


def main() -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.utils import LOGGER

    from azaion_pipeline.lib.export import (
        ExportSettings,
        export_coreml,
        export_onnx,
        tensorrt_unavailable_reason,
    )
    from azaion_pipeline.lib.parity import ParityThresholds, check_parity
    from azaion_pipeline.lib.train import TrainingRequest, TrainingSettings, train
    from benchmarks.bench_training import build_dataset

    LOGGER.setLevel("WARNING")
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        scratch = Path(folder)
        dataset = build_dataset(scratch / "data", IMAGES)[1]
        settings = TrainingSettings(
            model="yolo11n.yaml", epochs=1, imgsz=IMGSZ, batch=8, workers=0, plots=False
        )
        request = TrainingRequest(
            settings=settings, data_yaml=dataset.data_yaml, dataset_version=dataset.version,
            models_dir=scratch / "models", device="cpu",
        )  # fmt: skip
        weights = train(request, on_epoch=lambda report: None).weights_path
        exports = scratch / "exports"
        print(f"model: yolo11n 1 epoch, imgsz {IMGSZ}, CPU")

        bare_onnx = _bare_export(weights, scratch, format="onnx", dynamic=True, batch=8)
        onnx = export_onnx(
            weights, IMGSZ, exports, ExportSettings(), extra_metadata={"model_version": "bench"}
        )
        print(
            f"onnx   : ours {onnx.seconds:6.1f} s, bare {bare_onnx:6.1f} s, "
            f"ratio {onnx.seconds / bare_onnx:.2f}x, {onnx.size_bytes / 1e6:.1f} MB"
        )
        bare_coreml = _bare_export(weights, scratch, format="coreml")
        coreml = export_coreml(weights, IMGSZ, exports, ExportSettings())
        print(
            f"coreml : ours {coreml.seconds:6.1f} s, bare {bare_coreml:6.1f} s, "
            f"ratio {coreml.seconds / bare_coreml:.2f}x, {coreml.size_bytes / 1e6:.1f} MB zip"
        )
        reason = tensorrt_unavailable_reason()
        print(f"tensorrt: skipped: {reason}" if reason else "tensorrt: available (not timed here)")

        started = time.perf_counter()
        settings = ExportSettings()
        report = check_parity(
            onnx.path, weights, dataset.data_yaml, IMGSZ, settings.conf, settings.iou,
            settings.max_batch, ParityThresholds(),
        )  # fmt: skip
        parity = time.perf_counter() - started
        print(
            f"parity : {parity:6.1f} s on {report.images} images "
            f"({parity / report.images * 1000:.0f} ms/image), {parity / onnx.seconds:.2f}x the "
            f"ONNX export; passed={report.passed}"
        )


if __name__ == "__main__":
    main()
