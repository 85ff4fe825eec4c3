"""Shared fixtures: the real dataset chain on generated data, and session-wide trained models.

Training is the expensive part, so each model is trained once per session and serves every
test that needs it; each test seeds its own Dagster instance with the model's record (a runless
materialization pointing at the stored record, as a finished run leaves it).

- ``trained``: 1 epoch on the default (hard) sample data: fast, but scores 0 mAP.
- ``learned``: ``LEARNABLE_TRAINING`` on ``LEARNABLE`` sample data: real detections (test mAP50
  0.55-0.75 after about a minute of CPU), so box agreement and the gate's comparison are
  exercised.
- ``weak``: the same data and recipe for 1 epoch: the worse model next to ``learned``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from azaion_pipeline.defs.dataset.augmented_dataset import augmented_dataset
from azaion_pipeline.defs.dataset.raw_annotations import raw_annotations
from azaion_pipeline.defs.dataset.training_dataset import training_dataset
from azaion_pipeline.defs.io import RecordIOManager
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.defs.store import PipelineStore
from azaion_pipeline.defs.training.assets import trained_model
from azaion_pipeline.defs.training.resources import YoloTrainer
from azaion_pipeline.lib.dataset.versions import DatasetVersion
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.sample_data import (
    LEARNABLE,
    LEARNABLE_TRAINING,
    SampleStyle,
    generate_sample_data,
)
from azaion_pipeline.lib.train import TrainedWeights
from azaion_pipeline_tests.seeding import seeded_instance, upstream

os.environ["YOLO_OFFLINE"] = "1"

TINY_TRAINING = {
    "model": "yolo11n.yaml",
    "epochs": 1,
    "imgsz": 128,
    "batch": 8,
    "workers": 0,
    "patience": 100,
}


LEARNED_RECIPE = {**LEARNABLE_TRAINING, "plots": False, "save_period": -1}


def tiny_run_config(**overrides: Any) -> dict:
    return {"ops": {"trained_model": {"config": {**TINY_TRAINING, **overrides}}}}


def training_resources(root: Path, device: str = "cpu") -> dict:
    return {
        "storage": AzaionStorage(root_dir=str(root)),
        "io_manager": RecordIOManager(root_dir=str(root)),
        "pipeline_store": PipelineStore(),  # off: one host
        "yolo_trainer": YoloTrainer(device=device, workers=0),
        "training_pipes_client": dg.PipesSubprocessClient(env={"YOLO_OFFLINE": "1"}),
    }


def latest_metadata(instance: dg.DagsterInstance, key: str) -> dict[str, Any]:
    """The UI metadata of ``key``'s latest materialization, as plain values."""
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    assert event is not None, f"{key} was not materialized"
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def failure_text(result: dg.ExecuteInJobResult) -> str:
    """Every step failure's message and description, for asserting on what users see."""
    texts = []
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        texts.append(str(data.error.message if data.error else ""))
        if data.user_failure_data:
            texts.append(str(data.user_failure_data.description))
    return "\n".join(texts)


def run_log(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id)]


def train(
    root: Path, dataset: DatasetVersion, device: str = "cpu", **overrides: Any
) -> tuple[dg.ExecuteInJobResult, TrainedWeights | None, list[str]]:
    """Materialize trained_model; returns the result, its record and the run log."""
    instance = seeded_instance(root, training_dataset=dataset)
    result = dg.materialize(
        [*upstream("training_dataset"), trained_model],
        instance=instance,
        resources=training_resources(root, device),
        run_config=tiny_run_config(**overrides),
        raise_on_error=False,
    )
    record = result.output_for_node("trained_model") if result.success else None
    return result, record, run_log(instance, result.run_id)


def build_dataset(
    root: Path, images: int, size: tuple[int, int], style: SampleStyle | None = None
) -> DatasetVersion:
    """training_dataset's record from the real chain: sample data → raw → augmented → split."""
    storage = AzaionStorage(root_dir=str(root))
    extra = {"style": style} if style else {}
    generate_sample_data(AzaionLayout.under(root), storage.classes(), images, size=size, **extra)
    result = dg.materialize(
        [raw_annotations, augmented_dataset, training_dataset],
        instance=dg.DagsterInstance.ephemeral(),
        resources={"storage": storage, "io_manager": RecordIOManager(root_dir=str(root))},
        run_config={
            "ops": {
                "raw_annotations": {"config": {"workers": 1}},
                "augmented_dataset": {"config": {"variants": 0, "workers": 1}},
            }
        },
    )
    assert result.success
    dataset = result.output_for_node("training_dataset")
    assert dataset.images["train"] > 0 and dataset.images["test"] > 0
    return dataset


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> DatasetVersion:
    return build_dataset(tmp_path_factory.mktemp("azaion-dataset"), 24, (160, 160))


@pytest.fixture(scope="session")
def learnable_dataset(tmp_path_factory) -> DatasetVersion:
    return build_dataset(tmp_path_factory.mktemp("azaion-learnable"), 100, (128, 128), LEARNABLE)


@pytest.fixture(scope="session")
def training_run(tmp_path_factory, dataset) -> tuple[TrainedWeights, dict[str, Any], list[str]]:
    """One tiny real training (1 epoch yolo11n from yaml): its record, UI metadata and run log."""
    root = tmp_path_factory.mktemp("azaion-trained")
    instance = seeded_instance(root, training_dataset=dataset)
    result = dg.materialize(
        [*upstream("training_dataset"), trained_model],
        instance=instance,
        resources=training_resources(root),
        run_config=tiny_run_config(),
        raise_on_error=False,
    )
    assert result.success, failure_text(result)
    record = result.output_for_node("trained_model")
    return record, latest_metadata(instance, "trained_model"), run_log(instance, result.run_id)


@pytest.fixture(scope="session")
def trained(training_run) -> TrainedWeights:
    return training_run[0]


def train_once(tmp_path_factory, dataset: DatasetVersion, name: str, **overrides: Any):
    result, record, _ = train(tmp_path_factory.mktemp(name), dataset, **overrides)
    assert result.success, failure_text(result)
    return record


@pytest.fixture(scope="session")
def learned(tmp_path_factory, learnable_dataset) -> TrainedWeights:
    """A model that really detects (``LEARNED_RECIPE``)."""
    return train_once(tmp_path_factory, learnable_dataset, "azaion-learned", **LEARNED_RECIPE)


@pytest.fixture(scope="session")
def weak(tmp_path_factory, learnable_dataset) -> TrainedWeights:
    """The learned recipe stopped after 1 epoch: same data, same size, detects nothing."""
    recipe = {**LEARNED_RECIPE, "epochs": 1}
    return train_once(tmp_path_factory, learnable_dataset, "azaion-weak", **recipe)
