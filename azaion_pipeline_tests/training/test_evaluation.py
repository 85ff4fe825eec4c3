"""The evaluator on a real trained model's real ONNX export."""

from pathlib import Path

import pytest

from azaion_pipeline.lib.evaluate import evaluate
from azaion_pipeline.lib.evaluation.evaluator import evaluate_export
from azaion_pipeline.lib.export import ExportSettings, export_onnx
from azaion_pipeline.lib.train import TrainedWeights

from .conftest import LEARNED_RECIPE, train_once


@pytest.fixture(scope="session")
def converged(tmp_path_factory, learnable_dataset) -> TrainedWeights:
    """The learned recipe run to 40 epochs (test mAP50 ~0.8).

    Agreement needs a model that has settled its classes: on the 20-epoch ``learned`` model
    ultralytics' val scores ~0.04 higher because its NMS keeps a box once per class above
    0.001 (multi-label), while the shipped export keeps each box's best class only.
    """
    recipe = {**LEARNED_RECIPE, "epochs": 40}
    return train_once(tmp_path_factory, learnable_dataset, "azaion-converged", **recipe)


@pytest.fixture(scope="session")
def converged_export(tmp_path_factory, converged) -> Path:
    """Exported as onnx_model does by default: NMS inside, a low in-graph score floor."""
    exported = export_onnx(
        converged.weights_path,
        converged.imgsz,
        tmp_path_factory.mktemp("azaion-eval-exports"),
        ExportSettings(),
    )
    return exported.path


@pytest.mark.slow
def test_evaluator_agrees_with_ultralytics_on_the_pt(converged, converged_export):
    data_yaml = converged.data_yaml
    ours = evaluate_export(converged_export, data_yaml.parent, batch=8)
    theirs = evaluate(converged.weights_path, data_yaml, "test", converged.imgsz, "cpu")
    assert theirs.map50_95 > 0.2, "the session model should really detect"
    assert ours.summary.overall.ap50_95 == pytest.approx(theirs.map50_95, abs=0.02)
    assert ours.summary.overall.ap50 == pytest.approx(theirs.map50, abs=0.03)
    assert ours.summary.images == theirs.images
    # LEARNABLE draws two Norm classes: one weather mode, both classes thresholded
    assert set(ours.summary.per_weather) == {"Norm"}
    assert set(ours.summary.thresholds) == set(ours.summary.per_class)
    assert set(ours.summary.per_size) <= {"small", "medium", "large"}
