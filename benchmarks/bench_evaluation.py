"""Evaluation cost: the promotion evaluator vs ultralytics ``model.val``, same images, same run.

The evaluator runs the exported ONNX on the CPU through onnxruntime, scores it with
faster-coco-eval (overall, per class, per weather mode, per size bucket), picks per-class
thresholds, draws PR curves and the confusion matrix, and, against a champion, adds the paired
bootstrap (``BENCH_EVAL_RESAMPLES``, default 1,000) and the flip report. Timed:

1. one model: our evaluator + a bootstrap against the already-scored champion vs one
   ``model.val`` of the ``.pt`` (goal: ≤ 1.5×);
2. the whole gate: both exports scored + bootstrap + flips vs ``model.val`` of both ``.pt``
   (what the gate before v2 ran).

Data: ``LEARNABLE`` sample images at 128 px, ``BENCH_EVAL_IMAGES`` test images (default 1,000)
100 training and 20 validation images; the champion is the LEARNABLE recipe, the challenger that model
fine-tuned a few more epochs, so both really detect. Exports and trainings are not timed.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

TEST_IMAGES = int(os.environ.get("BENCH_EVAL_IMAGES", 1000))
RESAMPLES = int(os.environ.get("BENCH_EVAL_RESAMPLES", 1000))
TRAIN_IMAGES = 100
VALID_IMAGES = 20  # ultralytics validates each epoch


def _dataset(root: Path) -> Path:
    """train/, valid/ and test/ folders hard-linked from generated sample data, plus a
    data.yaml naming the folders (a layout ultralytics reads as is; the evaluator too)."""
    import yaml

    from azaion_pipeline.lib.classes import ClassCatalog
    from azaion_pipeline.lib.files import link_or_copy
    from azaion_pipeline.lib.layout import AzaionLayout
    from azaion_pipeline.lib.sample_data import LEARNABLE, generate_sample_data
    from azaion_pipeline.lib.settings import load_settings

    catalog = ClassCatalog.load(load_settings().resolved_classes_file())
    layout = AzaionLayout.under(root / "azaion")
    wanted = TRAIN_IMAGES + VALID_IMAGES + TEST_IMAGES
    generate_sample_data(layout, catalog, wanted, size=(128, 128), style=LEARNABLE)
    pairs = sorted(
        (image, folder / "labels" / f"{image.stem}.txt")
        for folder in (layout.data, layout.data_seed)
        for image in (folder / "images").glob("*.jpg")
    )[:wanted]
    dataset = root / "dataset"
    validation_end = TRAIN_IMAGES + VALID_IMAGES
    for split, chosen in (
        ("train", pairs[:TRAIN_IMAGES]),
        ("valid", pairs[TRAIN_IMAGES:validation_end]),
        ("test", pairs[validation_end:]),
    ):
        for kind in ("images", "labels"):
            (dataset / split / kind).mkdir(parents=True)
        for image, label in chosen:
            link_or_copy(image, dataset / split / "images" / image.name)
            link_or_copy(label, dataset / split / "labels" / label.name)
    names = catalog.model_names()
    spec = {"path": str(dataset), "train": "train/images", "val": "valid/images"}
    spec |= {"test": "test/images", "nc": len(names), "names": names}
    (dataset / "data.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return dataset


def _train(dataset: Path, models: Path, epochs: int, init: Path | None = None) -> Path:
    from azaion_pipeline.lib.sample_data import LEARNABLE_TRAINING
    from azaion_pipeline.lib.train import TrainingRequest, TrainingSettings, train

    settings = TrainingSettings(
        **LEARNABLE_TRAINING, model="yolo11n.yaml", init=str(init) if init else "scratch",
        workers=0, plots=False, save_period=-1,
    )  # fmt: skip
    tuned = {"lr0": 1e-4} if init else {}  # a fine-tune, as the warm-start benchmark found
    settings = settings.model_copy(
        update={"epochs": epochs, "hyperparameters": {**settings.hyperparameters, **tuned}}
    )
    request = TrainingRequest(
        settings=settings, data_yaml=dataset / "data.yaml", dataset_version="bench",
        models_dir=models, init_weights=init, device="cpu",
    )  # fmt: skip
    return train(request, on_epoch=lambda report: None).weights_path


def _timed(action):
    started = time.perf_counter()
    result = action()
    return result, time.perf_counter() - started


def main() -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.utils import LOGGER

    from azaion_pipeline.lib.evaluate import evaluate, split_images
    from azaion_pipeline.lib.evaluation.comparison import compare
    from azaion_pipeline.lib.evaluation.evaluator import evaluate_export
    from azaion_pipeline.lib.evaluation.promotion import Incumbent, evaluate_candidate
    from azaion_pipeline.lib.evaluation.report import confusion_png, pr_curves_png
    from azaion_pipeline.lib.export import ExportSettings, export_onnx
    from azaion_pipeline.lib.sample_data import LEARNABLE_TRAINING

    LOGGER.setLevel("WARNING")
    imgsz = LEARNABLE_TRAINING["imgsz"]
    with tempfile.TemporaryDirectory(prefix="bench-evaluation-") as folder:
        scratch = Path(folder)
        dataset = _dataset(scratch)
        champion_pt = _train(dataset, scratch / "models", LEARNABLE_TRAINING["epochs"])
        challenger_pt = _train(dataset, scratch / "models", 5, init=champion_pt)
        exports = scratch / "exports"
        champion_onnx = export_onnx(champion_pt, imgsz, exports, ExportSettings()).path
        challenger_onnx = export_onnx(challenger_pt, imgsz, exports, ExportSettings()).path
        images = len(split_images(dataset / "data.yaml", "test"))
        print(f"{images} test images at 128 px, imgsz {imgsz}, CPU, {RESAMPLES} resamples")

        def val(weights: Path):
            return evaluate(weights, dataset / "data.yaml", "test", imgsz, "cpu")

        def ours_one_model():
            scores = evaluate_export(challenger_onnx, dataset, batch=8)
            pr_curves_png(scores), confusion_png(scores)
            return scores, compare(champion_scores, scores, RESAMPLES, 0.95, seed=0)

        champion_scores = evaluate_export(champion_onnx, dataset, batch=8)
        theirs, val_seconds = _timed(lambda: val(challenger_pt))
        (scores, comparison), our_seconds = _timed(ours_one_model)
        _, bootstrap_seconds = _timed(
            lambda: compare(champion_scores, scores, RESAMPLES, 0.95, seed=0)
        )
        print(
            f"one model : evaluator + bootstrap {our_seconds:6.1f} s (bootstrap + flips "
            f"{bootstrap_seconds:.1f} s), model.val {val_seconds:6.1f} s, "
            f"ratio {our_seconds / val_seconds:.2f}x (goal <= 1.5x)"
        )
        print(
            f"            AP50-95 ours (ONNX) {scores.summary.overall.ap50_95:.4f}, "
            f"ultralytics (.pt) {theirs.map50_95:.4f}; ΔAP50-95 vs champion "
            f"{comparison.intervals['overall'].delta:+.4f} "
            f"[{comparison.intervals['overall'].low:+.4f}, "
            f"{comparison.intervals['overall'].high:+.4f}]"
        )

        _, gate_seconds = _timed(
            lambda: evaluate_candidate(
                challenger_onnx, "challenger", dataset, "bench",
                Incumbent("champion", champion_onnx), batch=8, resamples=RESAMPLES,
                confidence=0.95, seed=0, flip_images=12,
            )
        )  # fmt: skip
        _, old_gate_seconds = _timed(lambda: (val(challenger_pt), val(champion_pt)))
        print(
            f"whole gate: both exports + bootstrap + flips {gate_seconds:6.1f} s, model.val of "
            f"both .pt {old_gate_seconds:6.1f} s, ratio {gate_seconds / old_gate_seconds:.2f}x"
        )


if __name__ == "__main__":
    main()
