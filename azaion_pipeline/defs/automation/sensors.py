"""``new_annotations_sensor``: new annotations flow into the dataset without a click."""

from __future__ import annotations

import dagster as dg

from azaion_pipeline.defs.automation.jobs import ingest_job
from azaion_pipeline.defs.automation.resources import LandingResource
from azaion_pipeline.defs.automation.settings import automation_settings
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.landing import Batch, LandingCursor, ZoneLook, look


def _run_request(batch: Batch) -> dg.RunRequest:
    counts = batch.counts
    return dg.RunRequest(
        run_key=f"ingest-{batch.id}",
        tags={
            "azaion/landing": batch.zone,
            "azaion/batch": batch.id,
            **{f"azaion/{kind}": str(n) for kind, n in counts.items()},
        },
    )


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
    return "; ".join(reasons)


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=automation_settings().sensor_interval_seconds,
    default_status=automation_settings().default_status(),
    description=(
        "Watches data/, data-seed/ and data_deleted/ (local tree and the S3 landing prefix). "
        "Once a batch has been quiet for the quiet period it requests one ingest_job run per "
        "batch; deletions and seed -> data validations count as changes."
    ),
)
def new_annotations_sensor(
    context: dg.SensorEvaluationContext, storage: AzaionStorage, landing: LandingResource
) -> dg.SensorResult:
    cursor = LandingCursor.parse(context.cursor)
    looks = [
        look(zone, cursor.for_zone(zone.uri), landing.quiet_seconds)
        for zone in landing.zones(storage.layout())
    ]
    batches = [zone_look.batch for zone_look in looks if zone_look.batch]
    run_requests = [_run_request(batch) for batch in batches if batch.needs_ingest]
    return dg.SensorResult(
        run_requests=run_requests,
        skip_reason=None if run_requests else _skip_reason(looks),
        cursor=cursor.advanced(looks).dumps(),
        asset_events=[_observation(batch) for batch in batches],
    )
