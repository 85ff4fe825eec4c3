"""``sealed_batches_sensor``: each batch the consumer seals becomes one partition and one run
that records the batch and ingests it."""

from __future__ import annotations

import dagster as dg

from azaion_pipeline.defs.automation.settings import sensor_status
from azaion_pipeline.defs.intake.assets import intake_batch_job, intake_batches
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.intake.batches import BatchLog
from azaion_pipeline.lib.settings import automation_settings


@dg.sensor(
    job=intake_batch_job,
    minimum_interval_seconds=automation_settings().sensor_interval_seconds,
    default_status=sensor_status(),
    description=(
        "Reads the consumer's batch index from where the last tick stopped (the cursor is a "
        "byte position, so a tick costs what is new) and requests one intake_batch_job run "
        "per sealed batch, keyed by the batch, in a partition of its own: the run records the "
        "batch and ingests it into the dataset."
    ),
)
def sealed_batches_sensor(
    context: dg.SensorEvaluationContext, storage: AzaionStorage
) -> dg.SensorResult:
    position = int(context.cursor or 0)
    batch_ids, position = BatchLog(storage.layout()).sealed_since(position)
    # A replay after a crash can seal the same batch id again: one partition, one run.
    batch_ids = list(dict.fromkeys(batch_ids))
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=f"intake-{batch_id}", partition_key=batch_id)
            for batch_id in batch_ids
        ],
        dynamic_partitions_requests=[intake_batches.build_add_request(batch_ids)]
        if batch_ids
        else [],
        cursor=str(position),
        skip_reason=None if batch_ids else "no batch sealed since the last tick",
    )
