"""``retrain_schedule``: retrain on a schedule, but only when there is something new to learn."""

from __future__ import annotations

import dagster as dg

from azaion_pipeline.defs.automation.jobs import retrain_job
from azaion_pipeline.defs.automation.settings import schedule_status
from azaion_pipeline.lib.settings import automation_settings

# training_dataset's own data version, and the one trained_model recorded as its input.
DATA_VERSION_TAG = "dagster/data_version"
INPUT_VERSION_TAG = "dagster/input_data_version/training_dataset"


def _latest(instance: dg.DagsterInstance, asset: str) -> dg.AssetMaterialization | None:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    return event.asset_materialization if event else None


def _dataset_version(materialization: dg.AssetMaterialization, fallback_tag: str) -> str | None:
    """The contract's ``dataset_version`` metadata, else a data-version tag Dagster recorded."""
    entry = materialization.metadata.get("dataset_version")
    if entry is not None:
        return str(entry.value)
    return (materialization.tags or {}).get(fallback_tag)


def retrain_decision(instance: dg.DagsterInstance) -> dg.RunRequest | dg.SkipReason:
    in_flight = instance.get_run_records(
        dg.RunsFilter(
            job_name=retrain_job.name,
            statuses=[
                dg.DagsterRunStatus.QUEUED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
            ],
        ),
        limit=1,
    )
    if in_flight:
        return dg.SkipReason(
            f"retrain_job run {in_flight[0].dagster_run.run_id} is still in progress"
        )
    dataset = _latest(instance, "training_dataset")
    if dataset is None:
        return dg.SkipReason("training_dataset has never been materialized: nothing to train on")
    dataset_version = _dataset_version(dataset, DATA_VERSION_TAG)
    model = _latest(instance, "trained_model")
    if model is not None and _dataset_version(model, INPUT_VERSION_TAG) == dataset_version:
        model_version = model.metadata.get("model_version")
        return dg.SkipReason(
            f"training_dataset {dataset_version} has not changed since trained_model "
            f"{model_version.value if model_version else ''} was trained on it"
        )
    return dg.RunRequest(tags={"azaion/dataset_version": str(dataset_version)})


@dg.schedule(
    job=retrain_job,
    cron_schedule=automation_settings().retrain_cron,
    execution_timezone=automation_settings().retrain_timezone,
    default_status=schedule_status(),
    description=(
        "Runs retrain_job when training_dataset changed since the current trained_model "
        "was trained; otherwise skips and says why."
    ),
)
def retrain_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    return retrain_decision(context.instance)
