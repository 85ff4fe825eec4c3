"""retrain_schedule fires only when training_dataset changed since the current trained_model."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg

from azaion_pipeline.defs.automation.schedules import retrain_schedule


def report(instance, asset: str, **metadata) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset, metadata=metadata))


def evaluate(instance):
    return retrain_schedule.evaluate_tick(dg.build_schedule_context(instance=instance))


def test_skips_without_a_training_dataset(instance):
    result = evaluate(instance)
    assert result.run_requests == []
    assert "never been materialized" in result.skip_message


def test_fires_for_a_first_dataset_then_skips_then_fires_for_a_new_one(instance):
    report(instance, "training_dataset", dataset_version="2026-11-22-aaaa")
    first = evaluate(instance)
    assert len(first.run_requests) == 1
    assert first.run_requests[0].tags["azaion/dataset_version"] == "2026-11-22-aaaa"

    report(instance, "trained_model", dataset_version="2026-11-22-aaaa", model_version="m1")
    unchanged = evaluate(instance)
    assert unchanged.run_requests == []
    assert "has not changed since trained_model m1" in unchanged.skip_message

    report(instance, "training_dataset", dataset_version="2026-11-23-bbbb")
    changed = evaluate(instance)
    assert [r.tags["azaion/dataset_version"] for r in changed.run_requests] == ["2026-11-23-bbbb"]


def test_skips_while_a_retrain_run_is_in_flight(instance):
    report(instance, "training_dataset", dataset_version="v1")
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
