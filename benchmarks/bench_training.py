"""Training stage: orchestration overhead, and warm start vs scratch.

1. ``trained_model`` materialised through Dagster (Pipes child process, test-split scoring,
   content-addressed copy, plots) vs a bare ``YOLO(...).train(...)`` with the same data and
   recipe, in the same run. Goal: ≤ 1.10× on a recipe where the bare training takes ≥ 60 s.
2. Warm start vs scratch on a grown dataset: a champion is trained on part of the data, then
   the grown dataset is trained from scratch and warm-started from the champion; printed:
   epochs and wall seconds until each reaches the champion's validation score.
   Goal: warm ≤ 1/6 of scratch.

Sizes come from the environment (the printed lines say what ran): ``BENCH_TRAIN_IMAGES``
(sample annotations, default 48), ``BENCH_TRAIN_EPOCHS`` (overhead recipe, default 24),
``BENCH_TRAIN_IMGSZ`` (default 128), ``BENCH_WARM_EPOCHS`` (champion / scratch epochs, default 6).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

IMAGES = int(os.environ.get("BENCH_TRAIN_IMAGES", 48))
EPOCHS = int(os.environ.get("BENCH_TRAIN_EPOCHS", 24))
IMGSZ = int(os.environ.get("BENCH_TRAIN_IMGSZ", 128))
WARM_EPOCHS = int(os.environ.get("BENCH_WARM_EPOCHS", 6))
BATCH = 8


def build_dataset(root: Path, images: int, seed: int = 0) -> dict[str, Any]:
    """The real dataset chain on generated data; returns training_dataset's metadata."""
    import dagster as dg

    from azaion_pipeline.defs.dataset.augmented_dataset import augmented_dataset
    from azaion_pipeline.defs.dataset.raw_annotations import raw_annotations
    from azaion_pipeline.defs.dataset.training_dataset import training_dataset
    from azaion_pipeline.defs.resources import AzaionStorage
    from azaion_pipeline.lib.layout import AzaionLayout
    from azaion_pipeline.lib.sample_data import generate_sample_data

    storage = AzaionStorage(root_dir=str(root))
    generate_sample_data(AzaionLayout.under(root), storage.classes(), images, seed, size=(160, 160))
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize(
        [raw_annotations, augmented_dataset, training_dataset],
        instance=instance,
        resources={"storage": storage},
        run_config={"ops": {"augmented_dataset": {"config": {"variants": 0}}}},
    )
    event = instance.get_latest_materialization_event(dg.AssetKey("training_dataset"))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def _quiet_ultralytics() -> None:
    from ultralytics.utils import LOGGER

    LOGGER.setLevel("WARNING")


def overhead(scratch: Path) -> None:
    import dagster as dg
    from ultralytics import YOLO

    from azaion_pipeline.defs.resources import AzaionStorage
    from azaion_pipeline.defs.training.assets import trained_model
    from azaion_pipeline.defs.training.resources import YoloTrainer

    dataset = build_dataset(scratch / "data", IMAGES)
    print(
        f"recipe: yolo11n.yaml, {EPOCHS} epochs, imgsz {IMGSZ}, batch {BATCH}, CPU, "
        f"{dataset['train_images']} train / {dataset['valid_images']} valid images"
    )
    started = time.perf_counter()
    YOLO("yolo11n.yaml").train(
        data=dataset["data_yaml"], epochs=EPOCHS, imgsz=IMGSZ, batch=BATCH, workers=0,
        device="cpu", seed=0, save_period=1, project=str(scratch / "bare"), name="run",
        verbose=False,
    )  # fmt: skip
    bare = time.perf_counter() - started

    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(
        dg.AssetMaterialization("training_dataset", metadata=dataset)
    )
    started = time.perf_counter()
    result = dg.materialize(
        [trained_model],
        instance=instance,
        resources={
            "storage": AzaionStorage(root_dir=str(scratch / "asset")),
            "yolo_trainer": YoloTrainer(device="cpu", workers=0),
            "training_pipes_client": dg.PipesSubprocessClient(env={"YOLO_OFFLINE": "1"}),
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


MAP = "val mAP50-95"
LOSS = "-(val box+cls+dfl loss)"


def _scores(table: list[dict[str, float]], metric: str) -> list[float]:
    """Per-epoch validation score, higher is better."""
    if metric == MAP:
        return [row.get("metrics/mAP50-95(B)", 0.0) for row in table]
    return [-(row["val/box_loss"] + row["val/cls_loss"] + row["val/dfl_loss"]) for row in table]


def _metric(table: list[dict[str, float]]) -> str:
    """mAP50-95 when the champion ever scored above zero; otherwise the validation loss
    (tiny CPU runs often never leave mAP 0)."""
    return MAP if any(_scores(table, MAP)) else LOSS


def _epochs_to_reach(scores: list[float], target: float) -> int | None:
    return next((i + 1 for i, s in enumerate(scores) if s >= target), None)


def warm_start(scratch: Path) -> None:
    from azaion_pipeline.lib.train import TrainingRequest, read_results_csv, train

    base = build_dataset(scratch / "base", IMAGES // 2)
    grown = build_dataset(scratch / "grown", IMAGES)

    def run(dataset: dict, epochs: int, init_weights: Path | None, name: str):
        request = TrainingRequest(
            data_yaml=Path(dataset["data_yaml"]), dataset_version=dataset["dataset_version"],
            models_dir=scratch / name, model="yolo11n.yaml",
            init="scratch" if init_weights is None else str(init_weights),
            init_weights=init_weights, epochs=epochs, imgsz=IMGSZ, batch=BATCH, workers=0,
            device="cpu", plots=False, save_period=-1,
        )  # fmt: skip
        started = time.perf_counter()
        trained = train(request, on_epoch=lambda report: None)
        seconds = time.perf_counter() - started
        table = read_results_csv(trained.run_dir / "results.csv")
        return trained, seconds, table

    champion, _, champion_table = run(base, WARM_EPOCHS, None, "champion")
    metric = _metric(champion_table)
    target = max(_scores(champion_table, metric))
    _, scratch_seconds, scratch_table = run(grown, WARM_EPOCHS, None, "scratch")
    warm_epochs = max(1, WARM_EPOCHS // 6)
    _, warm_seconds, warm_table = run(grown, warm_epochs, champion.weights_path, "warm")
    scratch_scores = _scores(scratch_table, metric)
    warm_scores = _scores(warm_table, metric)
    scratch_reach = _epochs_to_reach(scratch_scores, target)
    warm_reach = _epochs_to_reach(warm_scores, target)
    print(
        f"champion: {WARM_EPOCHS} epochs on {base['train_images']} train images; "
        f"grown dataset {grown['train_images']} train images; target {metric} {target:.4f}"
    )
    print(
        f"scratch: {WARM_EPOCHS} epochs {scratch_seconds:6.1f} s, best {max(scratch_scores):.4f},"
        f" reaches target at epoch {scratch_reach}"
    )
    print(
        f"warm   : {warm_epochs} epochs {warm_seconds:6.1f} s, best {max(warm_scores):.4f},"
        f" reaches target at epoch {warm_reach}"
    )
    if metric == LOSS:
        print(
            "note: mAP stayed 0 in every epoch at this scale, so the proxy is the validation loss"
        )
    if scratch_reach and warm_reach:
        # cumulative training seconds from results.csv: excludes process start and final scoring
        scratch_cost = scratch_table[scratch_reach - 1]["time"]
        warm_cost = warm_table[warm_reach - 1]["time"]
        verdict = "meets" if warm_cost <= scratch_cost / 6 else "misses"
        print(
            f"training seconds to reach the target: scratch {scratch_cost:.1f}, warm {warm_cost:.1f};"
            f" warm/scratch = {warm_cost / scratch_cost:.2f} ({verdict} ≤ 1/6)"
        )
    else:
        print(
            f"wall time ratio warm/scratch = {warm_seconds / scratch_seconds:.2f}"
            " (a run did not reach the target within its epochs)"
        )


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
