"""Gate v2 through Dagster: model_evaluation scores real ONNX exports of real trained models
against the champion's export on the same test images; promotion_gate judges the record.

The gate's conditions one by one (and a model better overall but worse at Night) are in
test_evaluation_math.py on constructed predictions.
"""

from pathlib import Path

import dagster as dg
import pytest

from azaion_pipeline.defs.evaluation.assets import model_evaluation, promotion_gate
from azaion_pipeline.defs.io import RecordIOManager
from azaion_pipeline.defs.publish.assets import published_model
from azaion_pipeline.defs.publish.resources import publish_resource_defs
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.defs.store import PipelineStore
from azaion_pipeline.lib.champion import promote_champion, read_champion
from azaion_pipeline.lib.evaluation.promotion import ModelEvaluation
from azaion_pipeline.lib.export import ExportedModel, ExportSettings, TensorrtExport, export_onnx
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.train import TrainedWeights
from azaion_pipeline.lib.tuf_repo import KEY_ENV
from azaion_pipeline_tests.seeding import seeded_instance, upstream

pytestmark = pytest.mark.slow


def exported(root: Path, trained: TrainedWeights) -> ExportedModel:
    """onnx_model's record for ``trained``, exported with onnx_model's defaults."""
    settings = ExportSettings()
    file = export_onnx(trained.weights_path, trained.imgsz, root, settings)
    return ExportedModel(file=file, imgsz=trained.imgsz, source=trained, **settings.model_dump())


@pytest.fixture(scope="session")
def learned_export(tmp_path_factory, learned) -> ExportedModel:
    return exported(tmp_path_factory.mktemp("azaion-gate-learned"), learned)


@pytest.fixture(scope="session")
def weak_export(tmp_path_factory, weak) -> ExportedModel:
    return exported(tmp_path_factory.mktemp("azaion-gate-weak"), weak)


def crown(root: Path, champion: ExportedModel, with_onnx: bool = True) -> None:
    source = champion.source
    promote_champion(
        AzaionLayout.under(root),
        source.weights_path,
        source.weights_sha256,
        source.model_version,
        onnx=champion.file.path if with_onnx else None,
        onnx_sha256=champion.file.sha256 if with_onnx else None,
    )


def run_gate(
    root: Path, candidate: ExportedModel, **gate
) -> tuple[ModelEvaluation, dg.AssetCheckEvaluation, dict]:
    result = dg.materialize(
        [*upstream("onnx_model"), model_evaluation, promotion_gate],
        instance=seeded_instance(root, onnx_model=candidate),
        resources={
            "storage": AzaionStorage(root_dir=str(root)),
            "io_manager": RecordIOManager(root_dir=str(root)),
            "pipeline_store": PipelineStore(),
        },
        run_config={"ops": {"model_evaluation_promotion_gate": {"config": gate}}},
        raise_on_error=False,
    )
    (check,) = result.get_asset_check_evaluations()
    (materialization,) = result.asset_materializations_for_node("model_evaluation")
    ui = {key: value.value for key, value in materialization.metadata.items()}
    return result.output_for_node("model_evaluation"), check, ui


def test_same_weights_give_an_interval_around_zero_and_pass(tmp_path, learned_export):
    crown(tmp_path, learned_export)
    record, check, ui = run_gate(tmp_path, learned_export, floor=0.0)
    assert check.passed, check.metadata["reason"].value
    assert record.comparison is not None and record.comparison.resamples >= 1000
    for interval in record.comparison.intervals.values():
        assert interval.low <= 0.0 <= interval.high and interval.delta == 0.0
    assert record.comparison.flips == []
    assert record.candidate == record.champion
    assert record.candidate.overall.ap50_95 > 0.05, "the session model should really detect"
    for key in ("slices", "thresholds", "pr_curves", "confusion_matrix"):
        assert key in ui
    assert "data:image/png;base64," in ui["pr_curves"]


def test_a_worse_candidate_is_refused_with_what_failed(tmp_path, learned_export, weak_export):
    crown(tmp_path, learned_export)
    record, check, ui = run_gate(tmp_path, weak_export, floor=0.0)
    assert not check.passed
    failed = check.metadata["failed"].value
    assert "overall" in failed
    assert "interval" in check.metadata["reason"].value
    overall = record.comparison.intervals["overall"]
    assert overall.high < 0, "a 1-epoch model is significantly worse than the learned one"
    assert record.champion_model_version == learned_export.model_version
    # the boxes the champion found and the candidate lost are shown with both models' boxes
    assert record.comparison.newly_missed > 0
    assert "data:image/png;base64," in ui["flips"]


def test_a_better_candidate_passes(tmp_path, learned_export, weak_export):
    crown(tmp_path, weak_export)
    record, check, _ = run_gate(tmp_path, learned_export, floor=0.05)
    assert check.passed, check.metadata["reason"].value
    assert record.comparison.intervals["overall"].low > 0
    assert record.candidate.thresholds, "per-class thresholds come from the export"


def test_a_champion_promoted_without_its_onnx_is_exported_for_the_comparison(
    tmp_path, learned_export
):
    crown(tmp_path, learned_export, with_onnx=False)
    record, check, _ = run_gate(tmp_path, learned_export, floor=0.0)
    assert check.passed, check.metadata["reason"].value
    assert record.champion_onnx_sha256 is not None
    assert record.comparison.intervals["overall"].delta == pytest.approx(0.0, abs=1e-9)


PUBLISH_SETTINGS = (
    "AZAION_API_URL", "AZAION_API_EMAIL", "AZAION_API_PASSWORD", "AZAION_CDN_ENDPOINT",
    "AZAION_CDN_BUCKET", "AZAION_CDN_UPLOADER_KEY", "AZAION_CDN_UPLOADER_SECRET",
    "AZAION_CDN_DOWNLOADER_KEY", "AZAION_CDN_DOWNLOADER_SECRET", "AZAION_MODEL_KEY",
    "AZAION_SIGNING_KEY", *KEY_ENV.values(),
)  # fmt: skip


def test_a_refused_model_is_never_published_nor_crowned(
    tmp_path, learned_export, weak_export, monkeypatch
):
    # publishing must not even start, so its services are configured but nowhere to be found
    for name in PUBLISH_SETTINGS:
        monkeypatch.setenv(
            name, "http://127.0.0.1:9" if name.endswith(("URL", "ENDPOINT")) else "x"
        )
    crown(tmp_path, learned_export)
    layout = AzaionLayout.under(tmp_path)
    champion_before = read_champion(layout)
    instance = seeded_instance(
        tmp_path,
        onnx_model=weak_export,
        coreml_model=weak_export,  # never loaded: the gate stops the run before publishing
        tensorrt_model=TensorrtExport(engine=None, skipped_reason="no CUDA GPU is visible"),
    )
    result = dg.materialize(
        [
            *upstream("onnx_model", "coreml_model", "tensorrt_model"),
            model_evaluation,
            promotion_gate,
            published_model,
        ],
        instance=instance,
        resources={
            **publish_resource_defs(),
            "storage": AzaionStorage(root_dir=str(tmp_path)),
            "io_manager": RecordIOManager(root_dir=str(tmp_path)),
            "pipeline_store": PipelineStore(),
        },
        run_config={"ops": {"model_evaluation_promotion_gate": {"config": {"floor": 0.0}}}},
        raise_on_error=False,
    )
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed
    assert instance.get_latest_materialization_event(dg.AssetKey("model_evaluation"))
    assert instance.get_latest_materialization_event(dg.AssetKey("published_model")) is None
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert "published_model" not in started
    assert read_champion(layout) == champion_before
