"""new_annotations_sensor against a real Azaion tree on disk and a real S3 endpoint."""

from __future__ import annotations

import os
import time

import dagster as dg

from azaion_pipeline.defs.automation.jobs import land_s3_batch_job
from azaion_pipeline.defs.automation.sensors import new_annotations_sensor
from azaion_pipeline.lib.landing import LandingCursor, S3LandingZone, look
from azaion_pipeline_tests.automation.conftest import move_annotation, write_annotation


def tick(instance, resources, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    return new_annotations_sensor.evaluate_tick(context)


def test_nothing_new_requests_no_run(instance, layout, sensor_resources):
    layout.data.mkdir(parents=True)
    result = tick(instance, sensor_resources())
    assert result.run_requests == []
    assert "nothing new" in result.skip_message


def test_new_files_request_one_run_and_the_same_tick_twice_the_same_run(
    instance, layout, sensor_resources
):
    names = {write_annotation(layout.data) for _ in range(3)}
    first = tick(instance, sensor_resources())
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.job_name in (None, "ingest_job")
    assert request.tags["azaion/new"] == "3"
    assert request.run_key.startswith("ingest-")
    # A tick repeated from the same cursor (daemon restart) asks for the same run key, which
    # Dagster launches once.
    again = tick(instance, sensor_resources())
    assert [r.run_key for r in again.run_requests] == [request.run_key]
    # Once the cursor moved past the batch, nothing is requested.
    after = tick(instance, sensor_resources(), cursor=first.cursor)
    assert after.run_requests == []
    # The batch is recorded on raw_annotations for the UI.
    observation = first.asset_events[0]
    assert observation.asset_key == dg.AssetKey("raw_annotations")
    assert observation.metadata["new"].value == len(names)


def test_next_batch_is_only_what_is_new(instance, layout, sensor_resources):
    write_annotation(layout.data)
    first = tick(instance, sensor_resources())
    write_annotation(layout.data)
    write_annotation(layout.data)
    second = tick(instance, sensor_resources(), cursor=first.cursor)
    assert len(second.run_requests) == 1
    assert second.run_requests[0].tags["azaion/new"] == "2"
    assert second.run_requests[0].run_key != first.run_requests[0].run_key


def test_files_still_being_written_wait_for_the_quiet_period(instance, layout, sensor_resources):
    name = write_annotation(layout.data)
    label = layout.data / "labels" / f"{name}.txt"
    resources = sensor_resources(quiet_seconds=1.0)
    with label.open("a") as growing:
        for _ in range(3):
            growing.write("1 0.4 0.4 0.1 0.1\n")
            growing.flush()
            waiting = tick(instance, resources)
            assert waiting.run_requests == []
            assert "waiting for the quiet period" in waiting.skip_message
            # The mark did not move: the next tick sees the whole batch again.
            assert LandingCursor.parse(waiting.cursor).for_zone(layout.root.as_uri()) is None
            time.sleep(0.4)
    time.sleep(1.1)
    ready = tick(instance, resources)
    assert len(ready.run_requests) == 1
    assert ready.run_requests[0].tags["azaion/new"] == "1"


def test_deletions_are_noticed(instance, layout, sensor_resources):
    kept, deleted = write_annotation(layout.data), write_annotation(layout.data)
    first = tick(instance, sensor_resources())
    move_annotation(deleted, layout.data, layout.data_deleted)
    second = tick(instance, sensor_resources(), cursor=first.cursor)
    assert len(second.run_requests) == 1
    tags = second.run_requests[0].tags
    assert (tags["azaion/deleted"], tags["azaion/new"]) == ("1", "0")
    assert kept != deleted


def test_seed_arrivals_wait_and_validations_trigger_ingest(instance, layout, sensor_resources):
    name = write_annotation(layout.data_seed)
    # The operator annotated it an hour ago; validation moves it later (content unchanged).
    an_hour_ago = time.time() - 3600
    for path in (
        layout.data_seed / "images" / f"{name}.jpg",
        layout.data_seed / "labels" / f"{name}.txt",
    ):
        os.utime(path, (an_hour_ago, an_hour_ago))
    seeded = tick(instance, sensor_resources())
    assert seeded.run_requests == []
    assert "await validation" in seeded.skip_message
    assert seeded.asset_events[0].metadata["seeded"].value == 1

    move_annotation(name, layout.data_seed, layout.data)
    validated = tick(instance, sensor_resources(), cursor=seeded.cursor)
    tags = validated.run_requests[0].tags
    assert (tags["azaion/validated"], tags["azaion/new"]) == ("1", "0")


def test_edited_label_counts_as_a_change(instance, layout, sensor_resources):
    name = write_annotation(layout.data)
    first = tick(instance, sensor_resources())
    time.sleep(0.05)  # past the kernel clock tick, so the edit gets a later ctime
    (layout.data / "labels" / f"{name}.txt").write_text("3 0.1 0.1 0.05 0.05\n")
    second = tick(instance, sensor_resources(), cursor=first.cursor)
    assert second.run_requests[0].tags["azaion/new"] == "1"


def put_batch(client, bucket, folder, names):
    for name in names:
        client.put_object(Bucket=bucket, Key=f"{folder}/images/{name}.jpg", Body=b"jpg")
        client.put_object(Bucket=bucket, Key=f"{folder}/labels/{name}.txt", Body=b"0 .5 .5 .1 .1")


def land(request, resources) -> None:
    result = land_s3_batch_job.execute_in_process(
        run_config=request.run_config, resources=resources
    )
    assert result.success


def test_s3_batches_land_in_the_local_tree_then_ingest(
    instance, layout, sensor_resources, s3_landing
):
    client, bucket, zone = s3_landing.writer, s3_landing.bucket, s3_landing.prefix
    kept = write_annotation(layout.data)
    put_batch(client, bucket, f"{zone}/20261123T100000Z-a/data", ["a1", "a2"])
    resources = sensor_resources(s3_uri=s3_landing.uri, s3_endpoint_url=s3_landing.endpoint)
    first = tick(instance, resources)
    # The local tree's own batch goes to ingest; the S3 batch first lands in the local tree.
    by_job = {r.job_name: r for r in first.run_requests}
    assert set(by_job) == {"ingest_job", "land_s3_batch_job"}
    assert by_job["land_s3_batch_job"].tags["azaion/landing"] == s3_landing.uri
    assert by_job["land_s3_batch_job"].tags["azaion/new"] == "2"
    land(by_job["land_s3_batch_job"], resources)
    assert (layout.data / "labels" / "a1.txt").read_text() == "0 .5 .5 .1 .1"

    put_batch(client, bucket, f"{zone}/20261123T110000Z-b/data", ["b1"])
    put_batch(client, bucket, f"{zone}/20261123T110000Z-b/data_deleted", [kept])
    client.put_object(Bucket=bucket, Key=f"{zone}/README.txt", Body=b"not an annotation")
    second = tick(instance, resources, cursor=first.cursor)
    by_job = {r.job_name: r for r in second.run_requests}
    # a1 and a2, now on local disk, are ingested; batch b lands.
    assert by_job["ingest_job"].tags["azaion/new"] == "2"
    landing_run = by_job["land_s3_batch_job"]
    assert (landing_run.tags["azaion/new"], landing_run.tags["azaion/deleted"]) == ("1", "1")
    land(landing_run, resources)
    # The deletion moved the local copy (never deleted it).
    assert not (layout.data / "labels" / f"{kept}.txt").exists()
    assert (layout.data_deleted / "images" / f"{kept}.jpg").exists()

    third = tick(instance, resources, cursor=second.cursor)
    [ingest] = third.run_requests
    assert ingest.job_name == "ingest_job"
    assert (ingest.tags["azaion/new"], ingest.tags["azaion/deleted"]) == ("1", "1")
    assert tick(instance, resources, cursor=third.cursor).run_requests == []


def test_s3_listing_starts_after_the_mark(s3_landing):
    client, bucket, prefix = s3_landing.writer, s3_landing.bucket, s3_landing.prefix
    put_batch(client, bucket, f"{prefix}/20261123T100000Z-a/data", [f"old{i}" for i in range(5)])
    reader = s3_landing.reader
    zone = S3LandingZone.from_uri(reader, s3_landing.uri)
    first = look(zone, None, quiet_seconds=0)
    put_batch(client, bucket, f"{prefix}/20261123T120000Z-b/data-seed", ["new"])
    calls = []
    reader.meta.events.register(
        "provide-client-params.s3.ListObjectsV2", lambda params, **_: calls.append(params)
    )
    second = look(zone, first.mark, quiet_seconds=0)
    assert {(f.area, f.name) for f in second.batch.files} == {("data-seed", "new")}
    # One listing for every area, starting after the mark: what already exists is not listed.
    assert [call["StartAfter"] for call in calls] == [first.mark]
