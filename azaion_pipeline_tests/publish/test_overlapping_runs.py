"""Overlapping runs: a model trained on dataset version A is exported and published with A's
lineage, although a newer version B materialised between its training and its publishing.

Every part is real: the dataset chain on generated data, a tiny YOLO training in its Pipes
child, ONNX/CoreML exports, the reference API and the S3 server over HTTP.
"""

from __future__ import annotations

import json

import dagster as dg
import pytest

from azaion_pipeline.defs.dataset.augmented_dataset import augmented_dataset
from azaion_pipeline.defs.dataset.raw_annotations import raw_annotations
from azaion_pipeline.defs.dataset.training_dataset import training_dataset
from azaion_pipeline.defs.evaluation.assets import model_evaluation, promotion_gate
from azaion_pipeline.defs.export.assets import coreml_model, onnx_model, tensorrt_model
from azaion_pipeline.defs.io import latest_record
from azaion_pipeline.defs.publish.assets import published_model, roundtrip_ok
from azaion_pipeline.defs.publish.resources import publish_resource_defs
from azaion_pipeline.defs.training.assets import trained_model
from azaion_pipeline.lib.champion import read_champion
from azaion_pipeline.lib.dataset.versions import DatasetVersion
from azaion_pipeline.lib.distribution import Release
from azaion_pipeline.lib.evaluation.slices import ensure_size_buckets
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.sample_data import generate_sample_data
from azaion_pipeline.lib.train import TrainedWeights
from azaion_pipeline_tests.training.conftest import (
    failure_text,
    tiny_run_config,
    training_resources,
)

from .conftest import cdn_store

pytestmark = pytest.mark.slow

INGEST = [raw_annotations, augmented_dataset, training_dataset]
RELEASE = [
    onnx_model,
    coreml_model,
    tensorrt_model,
    model_evaluation,
    promotion_gate,
    published_model,
    roundtrip_ok,
]
MODEL = "azaion-overlap"
INGEST_CONFIG = {
    "raw_annotations": {"config": {"workers": 1}},
    "augmented_dataset": {"config": {"variants": 0, "workers": 1}},
}


def test_publish_keeps_the_lineage_of_the_model_across_a_newer_dataset(tmp_path, stack_env):
    layout = AzaionLayout.under(tmp_path)
    resources = {**training_resources(tmp_path), **publish_resource_defs()}
    all_assets = [*INGEST, trained_model, *RELEASE]

    def run(selection, run_config=None) -> dg.ExecuteInProcessResult:
        result = dg.materialize(
            all_assets,
            selection=selection,
            instance=instance,
            resources=resources,
            run_config=run_config or {},
            raise_on_error=False,
        )
        assert result.success, failure_text(result)
        return result

    def ingest(images: int, seed: int) -> DatasetVersion:
        storage = resources["storage"]
        generate_sample_data(layout, storage.classes(), images, seed=seed, size=(96, 96))
        result = run(INGEST, {"ops": INGEST_CONFIG})
        return result.output_for_node("training_dataset")

    with dg.instance_for_test() as instance:
        version_a = ingest(24, seed=1)
        trained: TrainedWeights = run([trained_model], tiny_run_config(imgsz=96)).output_for_node(
            "trained_model"
        )
        assert trained.dataset_version == version_a.version

        # Between training and publishing, more annotations land and B materialises.
        version_b = ingest(12, seed=2)
        assert version_b.version != version_a.version
        assert latest_record(instance, "training_dataset", DatasetVersion) == version_b

        # its own model name: the session's CDN is shared with the other publishing tests;
        # a 1-epoch model scores ~0, so the gate's floor is lowered for it
        result = run(
            RELEASE,
            {
                "ops": {
                    "published_model": {"config": {"model_name": MODEL}},
                    "model_evaluation_promotion_gate": {"config": {"floor": 0.0}},
                }
            },
        )

    release: Release = result.output_for_node("published_model")
    assert release.source == trained  # the very weights, with A's lineage
    for artifact in release.artifacts:
        assert artifact.export.source.dataset_version == version_a.version
        assert artifact.export.imgsz == trained.imgsz == 96  # the export's own, no fallback
        assert artifact.manifest.dataset_version == version_a.version
    # What clients read on the CDN carries A too.
    downloader = cdn_store(stack_env, "downloader")
    onnx = next(a for a in release.artifacts if a.manifest.format == "onnx")
    stored = json.loads(downloader.get_bytes(onnx.manifest_uri.split("/", 3)[3]))
    assert stored["dataset_version"] == version_a.version
    assert stored["model_version"] == trained.model_version
    checks = {check.check_name: check for check in result.get_asset_check_evaluations()}
    assert set(checks) == {"promotion_gate", "roundtrip_ok"}
    assert all(check.passed for check in checks.values()), checks
    # A's test split was scored, not B's (both list into one store)
    evaluation = result.output_for_node("model_evaluation")
    assert evaluation.dataset_version == version_a.version
    assert evaluation.candidate.images == version_a.images["test"]
    assert evaluation.candidate.size_buckets == ensure_size_buckets(version_a.data_yaml)
    assert release.model_name == MODEL and release.previous_version is None
    champion = read_champion(layout)
    assert champion is not None and champion.dataset_version == version_a.version
    [materialization] = result.asset_materializations_for_node("published_model")
    assert materialization.metadata["dataset_version"].value == version_a.version
