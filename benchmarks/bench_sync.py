"""No shared disk: sync a dataset version from the object store into an empty node cache.

Against the same store (a real SeaweedFS, its own processes) in the same run, the baseline is
the obvious way: every object stored under its own sha256 key and fetched with one boto3
``get_object`` per object, one after the other, through the same client, with the same hash
check, atomic write and materialisation (pool links and lists; label caches are written at
training start, on host and node alike, and timed apart); goal >= 3x. The sync reads
the version's packs with ranged GETs (``lib/dataset_store.py``). Then a grown
version (+100 images) synced into the warm cache; goal <= 5% of the full sync: the node holds
the parent, so it reads the version's delta, splices the manifest from its own copy and
touches only the added entries (the full sync of a fresh cache pays for the whole). Objects are
small random "images" (sync never decodes them; the manifest carries their sizes) and
distinct label lines. ``BENCH_SYNC_IMAGES`` / ``BENCH_SYNC_GROWTH`` / ``BENCH_SYNC_WORKERS``
resize it.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

IMAGES = int(os.environ.get("BENCH_SYNC_IMAGES", 10_000))
GROWTH = int(os.environ.get("BENCH_SYNC_GROWTH", 100))
IMAGE_BYTES = (2_000, 6_000)


def write_pairs(folder: Path, start: int, count: int, rng: random.Random) -> list:
    """``count`` images under ``folder/images`` with labels under ``folder/labels``."""
    from azaion_pipeline.lib.dataset_store import Listed

    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    listed = []
    for index in range(start, start + count):
        split = ("train", "valid", "test")[index % 3]
        image = folder / "images" / f"{index:06d}.jpg"
        image.write_bytes(rng.randbytes(rng.randint(*IMAGE_BYTES)))
        boxes = (f"{index % 17} {rng.random():.6f} {rng.random():.6f} 0.1 0.1" for _ in range(2))
        # real labels are (almost) all distinct
        (folder / "labels" / f"{index:06d}.txt").write_text("\n".join(boxes) + "\n")
        listed.append(Listed(split, image, 640, 480))  # sizes as a catalogue would give them
    return listed


def put_each_object(store, files: dict) -> None:
    """The baseline's layout: one object per image or label, keyed by its sha256."""
    from concurrent.futures import ThreadPoolExecutor

    def put(item) -> None:
        sha256, path = item
        store.client.put_object(
            Bucket=store.bucket, Key=store.object_key(sha256), Body=path.read_bytes()
        )

    with ThreadPoolExecutor(store.workers) as pool:
        list(pool.map(put, files.items()))


def sequential_pull(store, version: str, cache) -> int:
    """The baseline: one boto3 GET per object, in turn; the same verify, write and lists."""
    from azaion_pipeline.lib.dataset_store import VersionManifest
    from azaion_pipeline.lib.hashing import CHUNK

    text = store.get_bytes(store.manifest_key(version))
    manifest = VersionManifest.model_validate_json(text)
    for sha256 in sorted(manifest.objects()):
        body = store.client.get_object(Bucket=store.bucket, Key=store.object_key(sha256))["Body"]
        cache.write_verified(sha256, body.iter_chunks(CHUNK))
    cache.materialise(manifest, text)
    return len(manifest.objects())


def main() -> None:
    import ultralytics.data.dataset  # noqa: F401 (the label-cache writer's; neither timing pays it)

    from azaion_pipeline.lib.dataset.labels_cache import prepare_labels_caches
    from azaion_pipeline.lib.dataset_store import (
        DEFAULT_WORKERS,
        DatasetStore,
        NodeCache,
        build_manifest,
    )
    from azaion_pipeline.lib.s3 import s3_client
    from azaion_pipeline.services.seaweedfs import seaweedfs_s3

    workers = int(os.environ.get("BENCH_SYNC_WORKERS", DEFAULT_WORKERS))
    names = {i: f"Class-{i}" for i in range(80)}
    rng = random.Random(0)
    bucket = "azaion-bench-sync"
    with (
        tempfile.TemporaryDirectory(prefix="azaion-bench-sync-") as tmp,
        seaweedfs_s3([bucket]) as server,
    ):
        tmp_path = Path(tmp)
        who = server.uploader
        client = s3_client(
            server.endpoint, who.access_key, who.secret_key, max_pool_connections=workers
        )
        parallel = DatasetStore(client, bucket, workers=workers)

        pairs = write_pairs(tmp_path / "src", 0, IMAGES, rng)
        manifest, files = build_manifest("base", names, pairs)
        started = time.perf_counter()
        pushed = parallel.push_version(manifest, files)
        print(
            f"push base: {pushed.transferred} objects in {pushed.requests} PUTs, "
            f"{time.perf_counter() - started:.1f} s"
        )
        put_each_object(parallel, files)

        started = time.perf_counter()
        baseline = sequential_pull(parallel, "base", NodeCache(tmp_path / "node-seq"))
        sequential_s = time.perf_counter() - started
        cache = NodeCache(tmp_path / "node")
        started = time.perf_counter()
        _, full = parallel.pull_version("base", cache)
        full_s = time.perf_counter() - started
        assert baseline == full.transferred == pushed.objects

        pairs += write_pairs(tmp_path / "src", IMAGES, GROWTH, rng)
        grown, files = build_manifest("grown", names, pairs)
        pushed_grown = parallel.push_version(grown, files)
        started = time.perf_counter()
        grown_yaml, delta = parallel.pull_version("grown", cache)
        delta_s = time.perf_counter() - started
        started = time.perf_counter()
        prepare_labels_caches(grown_yaml)  # paid at training start, by host and node alike
        caches_s = time.perf_counter() - started

        mib = full.bytes / 2**20
        print(
            f"{IMAGES} images = {full.objects} objects, {mib:.1f} MiB; "
            f"{workers} download threads, SeaweedFS at {server.endpoint}"
        )
        print(f"sequential get_object:  {sequential_s:.2f} s ({baseline / sequential_s:.0f} obj/s)")
        print(
            f"node-cache sync:        {full_s:.2f} s ({full.objects / full_s:.0f} obj/s, "
            f"{full.requests} ranged GETs)"
        )
        print(f"speedup: {sequential_s / full_s:.2f}x (goal >= 3x)")
        print(
            f"grown version (+{GROWTH} images): pushed {pushed_grown.transferred} objects, "
            f"pulled {delta.transferred} of {delta.objects} in {delta.requests} GETs, {delta_s:.2f} s = "
            f"{100 * delta_s / full_s:.1f}% of the full sync (goal <= 5%)"
        )
        print(
            f"label caches of the grown version, written at training start: {caches_s:.2f} s "
            "(in neither sync above)"
        )


if __name__ == "__main__":
    main()
