"""new_annotations_sensor tick time with 100,000 annotations already landed and 100 new.

Goal: the real sensor tick (``evaluate_tick`` with its high-water-mark cursor) ≤ 2 s, for the
local tree and for an S3 prefix (SeaweedFS on loopback). Baseline: the naive sensor that
lists everything and diffs against the set of names it has seen (kept in its cursor).

Besides the time, the S3 lines print what each side transferred (list calls, keys), which is
what it costs on a remote S3. ``BENCH_SENSOR_EXISTING`` shrinks the seeded count (seeding goes
over HTTP: a few hundred objects a second on a loaded 2-core machine).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path

EXISTING = int(os.environ.get("BENCH_SENSOR_EXISTING", 100_000))
NEW = 100
GOAL_S = 2.0
SEED_THREADS = 16


def _tick(instance, resources, cursor):
    import dagster as dg

    from azaion_pipeline.defs.automation.sensors import new_annotations_sensor

    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    started = time.perf_counter()
    result = new_annotations_sensor.evaluate_tick(context)
    return time.perf_counter() - started, result


def _naive_state(labels: Path) -> dict[str, int]:
    with os.scandir(labels) as entries:
        return {entry.name: entry.stat().st_ctime_ns for entry in entries}


def _naive_local_tick(labels: Path, seen_cursor: str) -> tuple[float, int]:
    """Without a high-water mark, noticing new and edited labels means keeping every name's
    ctime in the cursor, comparing all of them, and writing the whole map back each tick."""
    started = time.perf_counter()
    seen = json.loads(seen_cursor)
    current = _naive_state(labels)
    changed = [name for name, ctime in current.items() if seen.get(name) != ctime]
    json.dumps(current)
    return time.perf_counter() - started, len(changed)


def _write_pairs(area: Path, count: int) -> None:
    images, labels = area / "images", area / "labels"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for _ in range(count):
        name = uuid.uuid4().hex
        (images / f"{name}.jpg").write_bytes(b"jpg")
        (labels / f"{name}.txt").write_text("0 0.5 0.5 0.1 0.1\n")


def _count_listings(events) -> dict[str, int]:
    counts = {"calls": 0, "keys": 0}

    def count(parsed, **_):
        counts["calls"] += 1
        counts["keys"] += parsed.get("KeyCount", 0)

    events.register("after-call.s3.ListObjectsV2", count)
    return counts


def _report(label: str, goal_s: float, baseline_s: float, extra: str = "") -> None:
    verdict = "OK" if goal_s <= GOAL_S else "OVER GOAL"
    print(
        f"{label}: tick {goal_s:.3f} s (goal ≤ {GOAL_S:.0f} s: {verdict}); naive baseline "
        f"{baseline_s:.3f} s; baseline/tick = {baseline_s / goal_s:.1f}x{extra}",
        flush=True,
    )


def bench_local(instance, tmp: Path) -> None:
    from azaion_pipeline.defs.automation.resources import LandingResource
    from azaion_pipeline.defs.resources import AzaionStorage

    root = tmp / "local"
    started = time.perf_counter()
    _write_pairs(root / "data", EXISTING)
    print(f"local: wrote {EXISTING} annotations in {time.perf_counter() - started:.1f} s")
    resources = {
        "storage": AzaionStorage(root_dir=str(root)),
        "landing": LandingResource(quiet_seconds=0),
    }
    first_s, first = _tick(instance, resources, None)
    print(f"local: first tick (everything new, {EXISTING} annotations) {first_s:.2f} s")
    idle_s, _ = _tick(instance, resources, first.cursor)
    naive_cursor = json.dumps(_naive_state(root / "data" / "labels"))
    _write_pairs(root / "data", NEW)
    tick_s, result = _tick(instance, resources, first.cursor)
    assert result.run_requests[0].tags["azaion/new"] == str(NEW), result.run_requests
    baseline_s, naive_new = _naive_local_tick(root / "data" / "labels", naive_cursor)
    assert naive_new == NEW
    _report(
        f"local {EXISTING}+{NEW}",
        tick_s,
        baseline_s,
        f"; idle tick {idle_s:.3f} s; cursor {len(first.cursor)} B vs naive {len(naive_cursor)} B",
    )


def _seed(client, bucket: str) -> set[str]:
    """EXISTING annotations (two objects each) in dated batch folders; returns their keys."""
    from concurrent.futures import ThreadPoolExecutor

    def put(i: int) -> tuple[str, str]:
        stamp = f"202611{1 + i // 86400:02d}T{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}Z"
        folder = f"landing/{stamp}-old/data"
        image, label = f"{folder}/images/{i:06d}.jpg", f"{folder}/labels/{i:06d}.txt"
        client.put_object(Bucket=bucket, Key=image, Body=b"jpg")
        client.put_object(Bucket=bucket, Key=label, Body=b"0 .5 .5 .1 .1")
        return image, label

    with ThreadPoolExecutor(SEED_THREADS) as pool:
        return {key for pair in pool.map(put, range(EXISTING), chunksize=256) for key in pair}


def bench_s3(instance) -> None:
    import boto3

    from azaion_pipeline.defs.automation.resources import LandingResource
    from azaion_pipeline.defs.resources import AzaionStorage
    from azaion_pipeline.lib.landing import LandingCursor
    from azaion_pipeline.services.seaweedfs import REGION, seaweedfs_s3

    bucket = "azaion-landing"
    with seaweedfs_s3([bucket]) as server:
        # The sensor reads with the default AWS credentials: the read-only identity.
        os.environ["AWS_ACCESS_KEY_ID"] = server.downloader.access_key
        os.environ["AWS_SECRET_ACCESS_KEY"] = server.downloader.secret_key
        os.environ["AWS_DEFAULT_REGION"] = REGION
        boto3.setup_default_session()
        writer = server.uploader.client(server.endpoint, max_pool_connections=SEED_THREADS)
        started = time.perf_counter()
        seen = _seed(writer, bucket)
        print(f"s3: seeded {EXISTING} annotations in {time.perf_counter() - started:.1f} s")
        resources = {
            "storage": AzaionStorage(root_dir=tempfile.mkdtemp(prefix="bench-empty-")),
            "landing": LandingResource(
                quiet_seconds=0, s3_uri=f"s3://{bucket}/landing", s3_endpoint_url=server.endpoint
            ),
        }
        # The existing objects were taken by earlier ticks: the mark sits on the last one.
        cursor = LandingCursor(marks={f"s3://{bucket}/landing": max(seen)}).dumps()
        for i in range(NEW):
            folder = "landing/20261123T120000Z-new/data"
            writer.put_object(Bucket=bucket, Key=f"{folder}/images/n{i}.jpg", Body=b"jpg")
            writer.put_object(Bucket=bucket, Key=f"{folder}/labels/n{i}.txt", Body=b"0")
        # The sensor makes its own client from the default session: count what it lists.
        tick_listed = _count_listings(boto3.DEFAULT_SESSION.events)
        tick_s, result = _tick(instance, resources, cursor)
        assert result.run_requests[0].tags["azaion/new"] == str(NEW), result.run_requests

        # The naive sensor lists the whole prefix and diffs against the names it saw.
        reader = server.downloader.client(server.endpoint)
        naive_listed = _count_listings(reader.meta.events)
        started = time.perf_counter()
        pages = reader.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="landing/")
        listed = {item["Key"] for page in pages for item in page.get("Contents", [])}
        new_keys = listed - seen
        baseline_s = time.perf_counter() - started
        assert len(new_keys) == 2 * NEW
        _report(
            f"s3 {EXISTING}+{NEW}",
            tick_s,
            baseline_s,
            f"; tick: {tick_listed['calls']} list calls returning {tick_listed['keys']} keys; "
            f"naive: {naive_listed['calls']} list calls returning {naive_listed['keys']} keys",
        )


def main() -> None:
    import dagster as dg

    os.environ.setdefault("AZAION_AUTOMATION_RUNNING", "false")
    with (
        tempfile.TemporaryDirectory(prefix="bench-sensor-") as tmp,
        dg.instance_for_test() as instance,
    ):
        bench_local(instance, Path(tmp))
        bench_s3(instance)


if __name__ == "__main__":
    main()
