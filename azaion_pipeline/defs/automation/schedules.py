"""``retrain_schedule``: retrain on a schedule, but only when there is something new to learn."""

from __future__ import annotations

import dagster as dg

from azaion_pipeline.defs.automation.jobs import retrain_job
from azaion_pipeline.defs.automation.settings import schedule_status
from azaion_pipeline.defs.io import latest_record
from azaion_pipeline.lib.dataset.versions import DatasetVersion
from azaion_pipeline.lib.settings import automation_settings
from azaion_pipeline.lib.train import TrainedWeights


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
    dataset = latest_record(instance, "training_dataset", DatasetVersion)
    if dataset is None:
        return dg.SkipReason("training_dataset has never been materialized: nothing to train on")
    model = latest_record(instance, "trained_model", TrainedWeights)
    if model is not None and model.dataset_version == dataset.version:
        return dg.SkipReason(
            f"training_dataset {dataset.version} has not changed since trained_model "
            f"{model.model_version} was trained on it"
        )
    return dg.RunRequest(tags={"azaion/dataset_version": dataset.version})


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
