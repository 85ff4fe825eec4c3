"""Training stage: orchestration overhead, and warm start vs scratch.

1. ``trained_model`` materialised through Dagster (Pipes child process, test-split scoring,
   content-addressed copy, plots) vs a bare ``YOLO(...).train(...)`` with the same data and
   recipe, in the same run. Goal: ≤ 1.10× on a recipe where the bare training takes ≥ 60 s.
2. Warm start vs scratch on a grown dataset, on ``LEARNABLE`` sample data with its recipe
   (``LEARNABLE_TRAINING``), so the models really detect: a champion is trained from scratch
   on the base set; the set doubles; the grown set is trained from scratch and warm-started
   from the champion, every epoch's checkpoint scored on the grown test split. Printed:
   epochs and training seconds until each reaches the champion's test mAP50-95 on that split.
   Goal: warm ≤ 1/6 of scratch.

Sizes come from the environment (the printed lines say what ran): ``BENCH_TRAIN_IMAGES``
(overhead part, default 48), ``BENCH_TRAIN_EPOCHS`` (overhead recipe, default 24),
``BENCH_TRAIN_IMGSZ`` (overhead, default 128), ``BENCH_WARM_IMAGES`` (base set of the warm
start part, default 100; the grown set has twice as many), ``BENCH_SCRATCH_EPOCHS`` (scratch
budget on the grown set, default 30), ``BENCH_WARM_EPOCHS`` (warm budget, default 5),
``BENCH_WARM_LR0`` (the warm run's lr0, default 1e-4: a fine-tune; at the scratch lr0 of 5e-3
the first epochs wipe out what the champion knew, and 5e-4 still dropped it below itself).
The warm run also has no warm-up epoch: ultralytics' warm-up starts the biases at
``warmup_bias_lr`` (0.1), which with the recipe's one warm-up epoch dropped the champion to
0.293 against its own 0.327 and kept it below for all 5 epochs.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

IMAGES = int(os.environ.get("BENCH_TRAIN_IMAGES", 48))
EPOCHS = int(os.environ.get("BENCH_TRAIN_EPOCHS", 24))
IMGSZ = int(os.environ.get("BENCH_TRAIN_IMGSZ", 128))
WARM_IMAGES = int(os.environ.get("BENCH_WARM_IMAGES", 100))
SCRATCH_EPOCHS = int(os.environ.get("BENCH_SCRATCH_EPOCHS", 30))
WARM_EPOCHS = int(os.environ.get("BENCH_WARM_EPOCHS", 5))
WARM_LR0 = float(os.environ.get("BENCH_WARM_LR0", 1e-4))
BATCH = 8


def build_dataset(root: Path, images: int, style=None, size=(160, 160)):
    """The real dataset chain on generated data; returns its instance and training_dataset's record."""
    import dagster as dg

    from azaion_pipeline.defs.dataset.augmented_dataset import augmented_dataset
    from azaion_pipeline.defs.dataset.raw_annotations import raw_annotations
    from azaion_pipeline.defs.dataset.training_dataset import training_dataset
    from azaion_pipeline.defs.io import RecordIOManager
    from azaion_pipeline.defs.resources import AzaionStorage
    from azaion_pipeline.lib.layout import AzaionLayout
    from azaion_pipeline.lib.sample_data import DEFAULT_STYLE, generate_sample_data

    storage = AzaionStorage(root_dir=str(root))
    layout = AzaionLayout.under(root)
    generate_sample_data(layout, storage.classes(), images, size=size, style=style or DEFAULT_STYLE)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [raw_annotations, augmented_dataset, training_dataset],
        instance=instance,
        resources={"storage": storage, "io_manager": RecordIOManager(root_dir=str(root))},
        run_config={"ops": {"augmented_dataset": {"config": {"variants": 0}}}},
    )
    return instance, result.output_for_node("training_dataset")


def _quiet_ultralytics() -> None:
    from ultralytics.utils import LOGGER

    LOGGER.setLevel("WARNING")


def overhead(scratch: Path) -> None:
    import dagster as dg
    from ultralytics import YOLO

    from azaion_pipeline.defs.io import RecordIOManager
    from azaion_pipeline.defs.resources import AzaionStorage
    from azaion_pipeline.defs.store import PipelineStore
    from azaion_pipeline.defs.training.assets import trained_model
    from azaion_pipeline.defs.training.resources import YoloTrainer

    instance, dataset = build_dataset(scratch / "data", IMAGES)
    print(
        f"recipe: yolo11n.yaml, {EPOCHS} epochs, imgsz {IMGSZ}, batch {BATCH}, CPU, "
        f"{dataset.images['train']} train / {dataset.images['valid']} valid images"
    )
    started = time.perf_counter()
    YOLO("yolo11n.yaml").train(
        data=str(dataset.data_yaml), epochs=EPOCHS, imgsz=IMGSZ, batch=BATCH, workers=0,
        device="cpu", seed=0, save_period=1, project=str(scratch / "bare"), name="run",
        verbose=False,
    )  # fmt: skip
    bare = time.perf_counter() - started

    started = time.perf_counter()
    result = dg.materialize(
        [dg.SourceAsset("training_dataset"), trained_model],
        instance=instance,
        resources={
            "storage": AzaionStorage(root_dir=str(scratch / "asset")),
            "io_manager": RecordIOManager(root_dir=str(scratch / "data")),
            "yolo_trainer": YoloTrainer(device="cpu", workers=0),
            "training_pipes_client": dg.PipesSubprocessClient(env={"YOLO_OFFLINE": "1"}),
            "pipeline_store": PipelineStore(),  # off: one host, as the bare run
        },
        run_config={
            "ops": {
                "trained_model": {
                    "config": {
                        "model": "yolo11n.yaml",
                        "epochs": EPOCHS,
                        "imgsz": IMGSZ,
                        "batch": BATCH,
                        "workers": 0,
                    }
                }
            }
        },
    )
    asset = time.perf_counter() - started
    assert result.success
    verdict = "meets" if asset / bare <= 1.10 else "misses"
    print(f"bare YOLO.train:            {bare:7.1f} s")
    print(f"trained_model materialised: {asset:7.1f} s")
    print(f"overhead ratio:             {asset / bare:7.2f}x  ({verdict} the 1.10x goal)")
    if bare < 60:
        print(
            "note: bare training under 60 s, so fixed costs (child start, test scoring) weigh more"
        )


def _epochs_to_reach(scores: list[float], target: float) -> int | None:
    return next((i + 1 for i, s in enumerate(scores) if s >= target), None)


def warm_start(scratch: Path) -> None:
    from azaion_pipeline.lib.evaluate import evaluate
    from azaion_pipeline.lib.sample_data import LEARNABLE, LEARNABLE_TRAINING
    from azaion_pipeline.lib.train import (
        TrainingRequest,
        TrainingSettings,
        read_results_csv,
        train,
    )

    # the same seed draws the same first images, so the grown set contains the base set
    base = build_dataset(scratch / "base", WARM_IMAGES, LEARNABLE, (128, 128))[1]
    grown = build_dataset(scratch / "grown", 2 * WARM_IMAGES, LEARNABLE, (128, 128))[1]
    imgsz = LEARNABLE_TRAINING["imgsz"]

    def test_map(weights: Path) -> float:
        return evaluate(weights, grown.data_yaml, "test", imgsz, "cpu").map50_95

    def run(dataset, epochs: int, init_weights: Path | None, name: str, **tuned: float):
        """Train; the cumulative training seconds and test mAP50-95 after each epoch."""
        settings = TrainingSettings(
            **LEARNABLE_TRAINING, model="yolo11n.yaml",
            init="scratch" if init_weights is None else str(init_weights),
            workers=0, plots=False, save_period=1,
        )  # fmt: skip
        settings = settings.model_copy(
            update={
                "epochs": epochs,
                "hyperparameters": {**settings.hyperparameters, **tuned},
            }
        )
        request = TrainingRequest(
            settings=settings, data_yaml=dataset.data_yaml, dataset_version=dataset.version,
            models_dir=scratch / name, init_weights=init_weights, device="cpu",
        )  # fmt: skip
        trained = train(request, on_epoch=lambda report: None)
        table = read_results_csv(trained.run_dir / "results.csv")
        # results.csv "time": training + validation seconds so far, without process start
        seconds = [row["time"] for row in table]
        weights = trained.run_dir / "weights"
        scores = [test_map(weights / f"epoch{epoch}.pt") for epoch in range(len(table))]
        return trained, seconds, scores

    champion, champion_seconds, _ = run(base, LEARNABLE_TRAINING["epochs"], None, "champion")
    target = test_map(champion.weights_path)
    print(
        f"recipe: yolo11n.yaml, imgsz {imgsz}, batch {LEARNABLE_TRAINING['batch']}, "
        f"{LEARNABLE_TRAINING['hyperparameters']}, {LEARNABLE_TRAINING['optimizer']}, CPU, "
        "LEARNABLE sample data"
    )
    print(
        f"champion: {LEARNABLE_TRAINING['epochs']} epochs from scratch on "
        f"{base.images['train']} train images in {champion_seconds[-1]:.1f} s; "
        f"grown set {grown.images['train']} train / {grown.images['test']} test images; "
        f"target = champion's test mAP50-95 on the grown set {target:.4f}"
    )
    if target <= 0:
        print("note: the champion scores 0, so reaching it says nothing; raise the epochs")
    reached = {}
    print(
        f"warm start: init = champion weights, lr0 {WARM_LR0}, no warm-up (same recipe otherwise)"
    )
    for name, epochs, init, tuned in (
        ("scratch", SCRATCH_EPOCHS, None, {}),
        ("warm", WARM_EPOCHS, champion.weights_path, {"lr0": WARM_LR0, "warmup_epochs": 0}),
    ):
        _, seconds, scores = run(grown, epochs, init, name, **tuned)
        epoch = _epochs_to_reach(scores, target)
        reached[name] = (epoch, seconds[epoch - 1]) if epoch else None
        trail = " ".join(f"{score:.3f}" for score in scores)
        outcome = f"epoch {epoch} ({seconds[epoch - 1]:.1f} s)" if epoch else "never"
        print(
            f"{name:7s}: {epochs} epochs {seconds[-1]:6.1f} s; test mAP50-95 per epoch: {trail};"
            f" reaches the target: {outcome}"
        )
    if reached["scratch"] and reached["warm"]:
        (scratch_epochs, scratch_cost), (warm_epochs, warm_cost) = (
            reached["scratch"],
            reached["warm"],
        )
        epoch_ratio, time_ratio = warm_epochs / scratch_epochs, warm_cost / scratch_cost
        verdict = "meets" if max(epoch_ratio, time_ratio) <= 1 / 6 else "misses"
        print(
            f"warm/scratch to reach the target: epochs {warm_epochs}/{scratch_epochs} = "
            f"{epoch_ratio:.2f}, training seconds {warm_cost:.1f}/{scratch_cost:.1f} = "
            f"{time_ratio:.2f} ({verdict} the ≤ 1/6 = 0.17 goal)"
        )
    else:
        print("no ratio: a run did not reach the target within its epochs (raise its budget)")


def main() -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    _quiet_ultralytics()
    with tempfile.TemporaryDirectory(prefix="bench-training-") as scratch:
        print("-- orchestration overhead --", flush=True)
        overhead(Path(scratch) / "overhead")
        print("-- warm start vs scratch --", flush=True)
        warm_start(Path(scratch) / "warm")


if __name__ == "__main__":
    main()
