"""Run alerts: failures, and runs that published a model, reach a person through a webhook."""

from __future__ import annotations

from typing import Any

import dagster as dg

from azaion_pipeline.defs.automation.resources import WEBHOOK_ENV, AlertWebhook
from azaion_pipeline.defs.automation.settings import sensor_status
from azaion_pipeline.lib.alerts import AlertPayload

# String metadata worth a line in an alert; other strings (paths, plots) are left out.
VERSION_KEYS = frozenset({"version", "model_version", "dataset_version"})


def _run_materializations(
    instance: dg.DagsterInstance, run_id: str
) -> dict[str, dg.AssetMaterialization]:
    records = instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    return {
        record.asset_key.to_user_string(): record.event_log_entry.asset_materialization
        for record in records
        if record.event_log_entry.asset_materialization
    }


def _key_metrics(materializations: dict[str, dg.AssetMaterialization]) -> dict:
    metrics = {}
    for asset, materialization in materializations.items():
        for key, entry in materialization.metadata.items():
            value = entry.value
            if (isinstance(value, int | float) and not isinstance(value, bool)) or (
                key in VERSION_KEYS and isinstance(value, str)
            ):
                metrics[f"{asset}.{key}"] = value
    return metrics


def _planned_assets(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """What the run set out to materialize (its asset selection can be empty: 'all')."""
    records = instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    ).records
    return sorted({record.asset_key.to_user_string() for record in records if record.asset_key})


def _post(webhook: AlertWebhook, run: dg.DagsterRun, **payload: Any) -> dg.SkipReason | None:
    if not webhook.url:
        return dg.SkipReason(f"{WEBHOOK_ENV} is not set: alert for run {run.run_id} not sent")
    webhook.send(
        AlertPayload(
            run_id=run.run_id, job=run.job_name, ui_url=webhook.run_link(run.run_id), **payload
        )
    )
    return None


@dg.run_failure_sensor(
    default_status=sensor_status(),
    description=f"Posts every failed run of this code location to {WEBHOOK_ENV}.",
)
def run_failure_alert(
    context: dg.RunFailureSensorContext, alert_webhook: AlertWebhook
) -> dg.SkipReason | None:
    run = context.dagster_run
    failed_steps = [event.step_key for event in context.get_step_failure_events()]
    metrics = _key_metrics(_run_materializations(context.instance, run.run_id))
    if failed_steps:
        metrics["failed_steps"] = ", ".join(failed_steps)
    return _post(
        alert_webhook,
        run,
        status="failure",
        assets=_planned_assets(context.instance, run.run_id),
        metrics=metrics,
        message=context.failure_event.message or "",
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    default_status=sensor_status(),
    description=f"Posts every run that materialized published_model to {WEBHOOK_ENV}.",
)
def publish_alert(
    context: dg.RunStatusSensorContext, alert_webhook: AlertWebhook
) -> dg.SkipReason | None:
    run = context.dagster_run
    materializations = _run_materializations(context.instance, run.run_id)
    if "published_model" not in materializations:
        return dg.SkipReason(f"run {run.run_id} published no model")
    version = materializations["published_model"].metadata.get("version")
    return _post(
        alert_webhook,
        run,
        status="published",
        assets=sorted(materializations),
        metrics=_key_metrics(materializations),
        message=f"published model {version.value}" if version else "published a model",
    )
