"""``new_annotations_sensor``: new annotations flow into the dataset without a click."""

from __future__ import annotations

import dagster as dg

from azaion_pipeline.defs.automation.jobs import LandBatchConfig, ingest_job, land_s3_batch_job
from azaion_pipeline.defs.automation.resources import LandingResource
from azaion_pipeline.defs.automation.settings import sensor_status
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.landing import (
    Batch,
    LandingCursor,
    LandingZone,
    S3LandingZone,
    ZoneLook,
    look,
)
from azaion_pipeline.lib.settings import automation_settings


def _run_request(zone: LandingZone, batch: Batch) -> dg.RunRequest | None:
    tags = {
        "azaion/landing": batch.zone,
        "azaion/batch": batch.id,
        **{f"azaion/{kind}": str(n) for kind, n in batch.counts.items()},
    }
    if isinstance(zone, S3LandingZone):
        # Seed-only batches land too: they must be on disk before a validation can move them.
        return dg.RunRequest(
            job_name=land_s3_batch_job.name,
            run_key=f"land-{batch.id}",
            run_config=dg.RunConfig(
                ops={"land_s3_batch": LandBatchConfig(after=batch.after, until=batch.until)}
            ),
            tags=tags,
        )
    if not batch.needs_ingest:
        return None
    return dg.RunRequest(job_name=ingest_job.name, run_key=f"ingest-{batch.id}", tags=tags)


def _observation(batch: Batch) -> dg.AssetObservation:
    """Shown on raw_annotations' page: what landed, including what needs no run (seed only)."""
    return dg.AssetObservation(
        asset_key="raw_annotations",
        description=f"Landed in {batch.zone}",
        metadata={"landing": batch.zone, "batch": batch.id, **batch.counts},
    )


def _skip_reason(looks: list[ZoneLook]) -> str:
    reasons = []
    for zone_look in looks:
        if zone_look.waiting:
            reasons.append(
                f"{zone_look.zone}: {len(zone_look.waiting)} files still landing "
                f"(last {zone_look.quiet_for_s:.0f} s ago); waiting for the quiet period"
            )
        elif zone_look.batch:
            reasons.append(
                f"{zone_look.zone}: {zone_look.batch.counts['seeded']} annotations await "
                "validation in data-seed; nothing for the dataset yet"
            )
        else:
            reasons.append(f"{zone_look.zone}: nothing new")
    return "; ".join(reasons) or "nothing to watch: the stream feeds the local tree"


@dg.sensor(
    jobs=[ingest_job, land_s3_batch_job],
    minimum_interval_seconds=automation_settings().sensor_interval_seconds,
    default_status=sensor_status(),
    description=(
        "Watches data/, data-seed/ and data_deleted/ (local tree and the S3 landing prefix; "
        "a local tree the stream feeds is left to sealed_batches_sensor). "
        "Once a batch has been quiet for the quiet period it requests one ingest_job run per "
        "local batch (deletions and seed -> data validations count as changes) and one "
        "land_s3_batch_job run per S3 batch, which copies it into the local tree."
    ),
)
def new_annotations_sensor(
    context: dg.SensorEvaluationContext, storage: AzaionStorage, landing: LandingResource
) -> dg.SensorResult:
    cursor = LandingCursor.parse(context.cursor)
    zones = landing.zones(storage.layout())
    looks = [look(zone, cursor.for_zone(zone.uri), landing.quiet_seconds) for zone in zones]
    batches = [
        (zone, zone_look.batch)
        for zone, zone_look in zip(zones, looks, strict=True)
        if zone_look.batch
    ]
    run_requests = [
        request for zone, batch in batches if (request := _run_request(zone, batch)) is not None
    ]
    return dg.SensorResult(
        run_requests=run_requests,
        skip_reason=None if run_requests else _skip_reason(looks),
        cursor=cursor.advanced(looks).dumps(),
        asset_events=[_observation(batch) for _, batch in batches],
    )
