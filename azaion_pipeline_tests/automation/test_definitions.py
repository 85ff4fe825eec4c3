"""The automation is wired into the one code location with the exact assets and checks."""

from __future__ import annotations

import dagster as dg

from azaion_pipeline.definitions import defs
from azaion_pipeline.defs.automation.jobs import DATASET_ASSETS, MODEL_ASSETS


def job_assets(name: str) -> set[str]:
    job = defs.resolve_job_def(name)
    return {key.to_user_string() for key in job.asset_layer.selected_asset_keys}


def job_checks(name: str) -> set[str]:
    job = defs.resolve_job_def(name)
    return {key.name for key in job.asset_layer.asset_graph.asset_check_keys}


def test_jobs_select_their_stages():
    assert job_assets("ingest_job") == set(DATASET_ASSETS)
    assert job_assets("retrain_job") == set(MODEL_ASSETS)
    assert job_assets("full_pipeline_job") == set(DATASET_ASSETS) | set(MODEL_ASSETS)
    # The quality gate runs inside the retrain job, so a worse model stops before publishing.
    assert "promotion_gate" in job_checks("retrain_job")
    assert "promotion_gate" not in job_checks("ingest_job")


def test_sensors_and_schedule_are_registered_with_their_resources():
    repository = defs.get_repository_def()
    assert {s.name for s in repository.sensor_defs} >= {
        "new_annotations_sensor",
        "run_failure_alert",
        "publish_alert",
    }
    schedule = repository.get_schedule_def("retrain_schedule")
    assert schedule.job_name == "retrain_job"
    sensor = repository.get_sensor_def("new_annotations_sensor")
    assert {target.job_name for target in sensor.targets} == {"ingest_job", "land_s3_batch_job"}
    assert {"storage", "landing"} <= sensor.required_resource_keys
    assert {"landing", "alert_webhook"} <= set(repository.get_top_level_resources())
    assert isinstance(sensor, dg.SensorDefinition)
