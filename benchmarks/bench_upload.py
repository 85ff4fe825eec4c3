"""Publish stage: multipart upload (parallel parts) of a 200 MiB big part vs one PUT, local S3 server.

Both go to moto's server over loopback HTTP with the uploader identity, through the same client
and the same post-upload ETag check. ``BENCH_UPLOAD_MIB`` shrinks the file on a slow machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

UPLOAD_MIB = int(os.environ.get("BENCH_UPLOAD_MIB", 200))
MIB = 1024 * 1024


# The S3 server runs in its own process, as a real one would: in-process it would share our GIL.
SERVER = """
import json, sys
from azaion_pipeline.devserver.stack import moto_s3
with moto_s3("azaion-bench-upload") as env:
    print(json.dumps(env), flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        yield json.loads(process.stdout.readline())
    finally:
        process.stdin.close()
        process.wait(timeout=30)


def main() -> None:
    from azaion_pipeline.lib.cdn import CdnStore
    from azaion_pipeline.lib.s3 import s3_client

    with tempfile.TemporaryDirectory() as tmp, s3_server() as env:
        source = Path(tmp) / "model.big"
        with open(source, "wb") as f:
            for _ in range(UPLOAD_MIB):
                f.write(os.urandom(MIB))
        client = s3_client(
            env["AZAION_CDN_ENDPOINT"],
            env["AZAION_CDN_UPLOADER_KEY"],
            env["AZAION_CDN_UPLOADER_SECRET"],
            read_timeout_s=300,
        )
        multipart = CdnStore(
            client, env["AZAION_CDN_BUCKET"], part_size=16 * MIB, max_concurrency=4
        )
        single = CdnStore(
            client,
            env["AZAION_CDN_BUCKET"],
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
