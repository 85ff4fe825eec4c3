"""retrain_schedule fires only when training_dataset changed since the current trained_model."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg

from azaion_pipeline.defs.automation.schedules import retrain_schedule
from azaion_pipeline_tests.seeding import dataset_record, seed_records, trained_record


def evaluate(instance):
    return retrain_schedule.evaluate_tick(dg.build_schedule_context(instance=instance))


def test_skips_without_a_training_dataset(instance):
    result = evaluate(instance)
    assert result.run_requests == []
    assert "never been materialized" in result.skip_message


def test_fires_for_a_first_dataset_then_skips_then_fires_for_a_new_one(instance, tmp_path):
    first_dataset = dataset_record(tmp_path, "2026-11-22-aaaa")
    seed_records(instance, tmp_path, training_dataset=first_dataset)
    first = evaluate(instance)
    assert len(first.run_requests) == 1
    assert first.run_requests[0].tags["azaion/dataset_version"] == "2026-11-22-aaaa"

    weights = tmp_path / "best.pt"
    weights.write_bytes(b"weights trained on aaaa")
    model = trained_record(weights, first_dataset.version, first_dataset.data_yaml)
    seed_records(instance, tmp_path, trained_model=model)
    unchanged = evaluate(instance)
    assert unchanged.run_requests == []
    assert f"has not changed since trained_model {model.model_version}" in unchanged.skip_message

    seed_records(instance, tmp_path, training_dataset=dataset_record(tmp_path, "2026-11-23-bbbb"))
    changed = evaluate(instance)
    assert [r.tags["azaion/dataset_version"] for r in changed.run_requests] == ["2026-11-23-bbbb"]


def test_skips_while_a_retrain_run_is_in_flight(instance, tmp_path):
    seed_records(instance, tmp_path, training_dataset=dataset_record(tmp_path, "v1"))
    run = instance.add_run(
        dg.DagsterRun(job_name="retrain_job", status=dg.DagsterRunStatus.STARTED)
    )
    result = evaluate(instance)
    assert result.run_requests == []
    assert f"{run.run_id} is still in progress" in result.skip_message


def test_cron_and_timezone_come_from_the_environment():
    probe = (
        "from azaion_pipeline.defs.automation.schedules import retrain_schedule as s;"
        "print(s.cron_schedule, s.execution_timezone, sep='|')"
    )
    env = {
        **os.environ,
        "AZAION_RETRAIN_CRON": "30 3 * * 6",
        "AZAION_RETRAIN_TIMEZONE": "Europe/Kyiv",
    }
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "30 3 * * 6|Europe/Kyiv"
