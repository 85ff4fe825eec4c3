"""new_annotations_sensor tick time with 100,000 annotations already landed and 100 new.

Goal: the real sensor tick (``evaluate_tick`` with its high-water-mark cursor) ≤ 2 s, for the
local tree and for an S3 prefix (moto server on loopback). Baseline: the naive sensor that
lists everything and diffs against the set of names it has seen (kept in its cursor).

moto scans and sorts the whole bucket on every ListObjectsV2 call, StartAfter or not; real
S3 seeks to StartAfter in its index. So besides the time, the S3 lines print what the tick
transferred (list calls, keys), which is what it costs on real S3.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import tempfile
import time
import uuid
from pathlib import Path

EXISTING = 100_000
NEW = 100
GOAL_S = 2.0
ACCOUNT = "123456789012"
NAIVE_PAGES_TIMED = 10


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


def bench_s3(instance) -> None:
    import boto3
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    from azaion_pipeline.defs.automation.resources import LandingResource
    from azaion_pipeline.defs.resources import AzaionStorage
    from azaion_pipeline.lib.landing import LandingCursor

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.setup_default_session()
        client = boto3.client("s3", endpoint_url=endpoint)
        bucket = "azaion-landing"
        client.create_bucket(Bucket=bucket)
        # Seeding 200k objects over HTTP would take minutes: write them into the in-process
        # moto backend; every listing below still goes over HTTP like a real client's.
        backend = s3_backends[ACCOUNT]["global"]
        started = time.perf_counter()
        for i in range(EXISTING):
            stamp = (
                f"202611{1 + i // 86400:02d}T{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}Z"
            )
            folder = f"landing/{stamp}-old/data"
            backend.put_object(bucket, f"{folder}/images/{i:06d}.jpg", b"jpg")
            backend.put_object(bucket, f"{folder}/labels/{i:06d}.txt", b"0 .5 .5 .1 .1")
        last_key = max(backend.get_bucket(bucket).keys.keys())
        print(f"s3: seeded {EXISTING} annotations in {time.perf_counter() - started:.1f} s")
        resources = {
            "storage": AzaionStorage(root_dir=tempfile.mkdtemp(prefix="bench-empty-")),
            "landing": LandingResource(
                quiet_seconds=0, s3_uri=f"s3://{bucket}/landing", s3_endpoint_url=endpoint
            ),
        }
        # The existing objects were taken by earlier ticks: the mark sits on the last one.
        # (A first tick over 200k keys on moto takes minutes: every page re-sorts the bucket.)
        zone = f"s3://{bucket}/landing"
        cursor = LandingCursor(marks={zone: last_key}).dumps()
        for i in range(NEW):
            folder = "landing/20261123T120000Z-new/data"
            client.put_object(Bucket=bucket, Key=f"{folder}/images/n{i}.jpg", Body=b"jpg")
            client.put_object(Bucket=bucket, Key=f"{folder}/labels/n{i}.txt", Body=b"0")
        # The sensor makes its own client from the default session: count what it lists.
        tick_listed = _count_listings(boto3.DEFAULT_SESSION.events)
        tick_s, result = _tick(instance, resources, cursor)
        assert result.run_requests[0].tags["azaion/new"] == str(NEW), result.run_requests

        # The naive sensor lists the whole prefix and diffs against what it saw. On moto every
        # page re-sorts the bucket (~1 s here), so time the first pages and scale to all pages.
        naive_listed = _count_listings(client.meta.events)
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="landing/")
        started = time.perf_counter()
        for page in itertools.islice(pages, NAIVE_PAGES_TIMED):
            page.get("Contents", [])
        per_page_s = (time.perf_counter() - started) / naive_listed["calls"]
        all_pages = math.ceil(2 * (EXISTING + NEW) / 1000)
        baseline_s = per_page_s * all_pages
        _report(
            f"s3 {EXISTING}+{NEW}",
            tick_s,
            baseline_s,
            f"; tick: {tick_listed['calls']} list calls returning {tick_listed['keys']} keys; "
            f"naive: {all_pages} list calls returning {2 * (EXISTING + NEW)} keys "
            f"(first {naive_listed['calls']} timed, {per_page_s:.2f} s each)",
        )
    finally:
        server.stop()


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
