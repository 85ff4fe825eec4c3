"""beats_champion: candidate vs a real promoted champion on the same test split."""

from pathlib import Path

import dagster as dg
import pytest

from azaion_pipeline.defs.export.assets import onnx_model
from azaion_pipeline.defs.training.assets import beats_champion, trained_model
from azaion_pipeline.lib.champion import promote_champion, read_champion
from azaion_pipeline.lib.evaluate import SplitMetrics, judge
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.train import TrainedWeights
from azaion_pipeline_tests.seeding import seeded_instance, upstream

from .conftest import tiny_run_config, training_resources


def gate_config(tolerance: float, floor: float) -> dict:
    return {
        "ops": {
            "trained_model_beats_champion": {"config": {"tolerance": tolerance, "floor": floor}}
        }
    }


def run_gate(
    root: Path, trained: TrainedWeights, tolerance: float, floor: float
) -> dg.AssetCheckEvaluation:
    instance = seeded_instance(root, trained_model=trained)
    result = dg.materialize(
        [*upstream("training_dataset"), trained_model, beats_champion],
        selection=dg.AssetSelection.checks(beats_champion),
        instance=instance,
        resources=training_resources(root),
        run_config=gate_config(tolerance, floor),
        raise_on_error=False,
    )
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def promote(root: Path, trained: TrainedWeights):
    return promote_champion(
        AzaionLayout.under(root),
        trained.weights_path,
        trained.weights_sha256,
        trained.model_version,
    )


@pytest.mark.slow
def test_gate_passes_against_an_equal_champion(tmp_path, trained):
    promote(tmp_path, trained)
    evaluation = run_gate(tmp_path, trained, tolerance=0.01, floor=0.0)
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    assert evaluation.passed, metadata["reason"]
    assert metadata["champion_map50_95"] == pytest.approx(metadata["candidate_map50_95"])
    assert metadata["per_class"].startswith("| class | candidate mAP50-95 | champion mAP50-95 |")
    assert metadata["per_class"].count("\n") >= 2  # at least one class row


@pytest.mark.slow
def test_gate_fails_below_the_floor_against_a_champion(tmp_path, trained):
    promote(tmp_path, trained)
    evaluation = run_gate(tmp_path, trained, tolerance=0.01, floor=0.5)
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    assert not evaluation.passed
    assert "below the floor 0.5000" in metadata["reason"]
    assert "champion_map50_95" in metadata


@pytest.mark.slow
def test_failing_gate_stops_exports_and_keeps_the_champion(tmp_path, dataset, trained):
    champion = promote(tmp_path, trained)
    instance = seeded_instance(tmp_path, training_dataset=dataset)
    run_config = tiny_run_config(init="champion")
    run_config["ops"].update(gate_config(0.01, 0.5)["ops"])
    result = dg.materialize(
        [*upstream("training_dataset"), trained_model, beats_champion, onnx_model],
        instance=instance,
        resources=training_resources(tmp_path),
        run_config=run_config,
        raise_on_error=False,
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert instance.get_latest_materialization_event(dg.AssetKey("trained_model"))
    assert instance.get_latest_materialization_event(dg.AssetKey("onnx_model")) is None
    assert read_champion(AzaionLayout.under(tmp_path)).weights_sha256 == champion.weights_sha256


@pytest.mark.slow
def test_gate_fails_a_worse_candidate_against_a_better_champion(tmp_path, learned, weak):
    promote(tmp_path, learned)
    evaluation = run_gate(tmp_path, weak, tolerance=0.01, floor=0.0)
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    assert not evaluation.passed
    assert "below champion" in metadata["reason"]
    assert metadata["champion_map50_95"] > metadata["candidate_map50_95"] + 0.01
    assert metadata["champion_model_version"] == learned.model_version


@pytest.mark.slow
def test_gate_passes_a_better_candidate_against_a_worse_champion(tmp_path, learned, weak):
    promote(tmp_path, weak)
    evaluation = run_gate(tmp_path, learned, tolerance=0.01, floor=0.05)
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    assert evaluation.passed, metadata["reason"]
    assert metadata["candidate_map50_95"] > metadata["champion_map50_95"] + 0.01
    assert metadata["candidate_map50_95"] >= 0.05  # cleared a real floor, not 0 ≥ 0


def metrics(score: float) -> SplitMetrics:
    return SplitMetrics("test", 4, 0.5, 0.5, score, score)


@pytest.mark.parametrize(
    ("candidate", "champion", "tolerance", "floor", "passed"),
    [
        (0.50, None, 0.01, 0.3, True),
        (0.20, None, 0.01, 0.3, False),
        (0.50, 0.505, 0.01, 0.3, True),
        (0.50, 0.60, 0.01, 0.3, False),
        (0.40, 0.30, 0.0, 0.45, False),
    ],
)
def test_judge(candidate, champion, tolerance, floor, passed):
    verdict = judge(metrics(candidate), metrics(champion) if champion else None, tolerance, floor)
    assert verdict.passed is passed
