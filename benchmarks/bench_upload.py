"""Publish stage: multipart upload (parallel parts) of a 200 MiB big part vs one PUT, real S3 server.

Both go to SeaweedFS (its own processes) over loopback HTTP with the uploader identity, through
the same client and the same post-upload ETag check. ``BENCH_UPLOAD_MIB`` shrinks the file.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

UPLOAD_MIB = int(os.environ.get("BENCH_UPLOAD_MIB", 200))
MIB = 1024 * 1024


def main() -> None:
    from azaion_pipeline.lib.cdn import CdnStore
    from azaion_pipeline.lib.s3 import s3_client
    from azaion_pipeline.services.seaweedfs import seaweedfs_s3

    bucket = "azaion-bench-upload"
    with tempfile.TemporaryDirectory() as tmp, seaweedfs_s3([bucket]) as server:
        source = Path(tmp) / "model.big"
        with open(source, "wb") as f:
            for _ in range(UPLOAD_MIB):
                f.write(os.urandom(MIB))
        uploader = server.uploader
        client = s3_client(
            server.endpoint, uploader.access_key, uploader.secret_key, read_timeout_s=300
        )
        multipart = CdnStore(client, bucket, part_size=16 * MIB, max_concurrency=4)
        single = CdnStore(
            client,
            bucket,
            multipart_threshold=UPLOAD_MIB * MIB + 1,  # above the file size: one PUT
            max_concurrency=1,
        )
        timings = {}
        for name, store in (("single PUT", single), ("multipart 16 MiB x4", multipart)):
            started = time.perf_counter()
            store.upload_file(source, f"bench/{name.replace(' ', '_')}.big")
            timings[name] = time.perf_counter() - started
            print(f"{name:<22}: {timings[name]:6.2f} s  {UPLOAD_MIB / timings[name]:7.1f} MiB/s")
        ratio = timings["single PUT"] / timings["multipart 16 MiB x4"]
        print(
            f"multipart speed-up    : {ratio:6.2f}x over a single PUT ({UPLOAD_MIB} MiB, loopback)"
        )


if __name__ == "__main__":
    main()
