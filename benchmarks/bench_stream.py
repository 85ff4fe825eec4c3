"""Intake: the stream consumer writing annotations durably vs a bare rstream reader, same messages.

Goal (issue 10): ``azaion-pipeline consume`` (decode, check, route, atomic writes, a flush and
a stored offset per sealed batch) reaches >= 0.8x the rate of a bare rstream consumer that only
reads the same messages, in the same run against the same local RabbitMQ node. Also prints
messages/s and MB/s. ``BENCH_STREAM_MESSAGES`` / ``BENCH_STREAM_IMAGE_KB`` change the load.

The consumer raises rstream's socket read size (``read_socket_in_large_pieces``), so the bare
reader is measured twice: with rstream's defaults (the goal's baseline) and with the same read
size (what is left is the cost of applying and flushing). CPU seconds (this process, all
threads) are printed beside wall seconds: on a shared host they move far less than wall time.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

MESSAGES = int(os.environ.get("BENCH_STREAM_MESSAGES", 2000))
IMAGE_KB = int(os.environ.get("BENCH_STREAM_IMAGE_KB", 200))
DISTINCT_IMAGES = 16
ROUNDS = 3  # best of each: other work on the host slows single runs a lot


def _noise_jpeg(seed: int, target_bytes: int) -> bytes:
    """A real JPEG of about ``target_bytes`` (noise compresses poorly, so size tracks pixels)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    side = 64
    while True:
        pixels = rng.integers(0, 256, (side, side * 4 // 3, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
        if buffer.tell() >= target_bytes:
            return buffer.getvalue()
        side = int(side * 1.1) + 1


def _messages() -> list[tuple[bytes, int]]:
    from azaion_pipeline.lib.intake.messages import AnnotationStatus, Role, encode_annotation

    images = [_noise_jpeg(seed, IMAGE_KB * 1024) for seed in range(DISTINCT_IMAGES)]
    return [
        (
            encode_annotation(
                name=f"bench-{index:06d}",
                image=images[index % DISTINCT_IMAGES],
                label_boxes=[(index % 17, 0.5, 0.5, 0.2, 0.1)],
                created_role=Role.VALIDATOR if index % 2 else Role.OPERATOR,
                created_email="bench@azaion.local",
                original_media_name=f"flight-{index // 100}.mp4",
                time_ticks=index * 400_000,
            ),
            AnnotationStatus.CREATED,
        )
        for index in range(MESSAGES)
    ]


async def _bare_read(stream) -> None:
    """A plain rstream consumer receiving every message's body."""
    from rstream import Consumer, ConsumerOffsetSpecification, OffsetType, amqp_decoder

    received = 0
    done = asyncio.Event()

    async def on_message(message, _context) -> None:
        nonlocal received
        bytes(message.body)
        received += 1
        if received == MESSAGES:
            done.set()

    async with Consumer(**stream.client_kwargs()) as consumer:
        await consumer.subscribe(
            stream.queue_name,
            on_message,
            decoder=amqp_decoder,
            offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST),
        )
        await done.wait()


def _intake(stream, root: Path, consumer_name: str) -> None:
    """Our consumer applying every message and sealing (flush, store the offset)."""
    from azaion_pipeline.lib.intake.batches import BatchLog
    from azaion_pipeline.lib.intake.consumer import IntakeConsumer, IntakeSettings
    from azaion_pipeline.lib.intake.store import AnnotationStore
    from azaion_pipeline.lib.layout import AzaionLayout

    layout = AzaionLayout.under(root)

    def on_batch(_batch_id: str) -> None:
        if consumer.report.consumed >= MESSAGES:
            consumer.stop()

    consumer = IntakeConsumer(
        AnnotationStore(layout),
        BatchLog(layout),
        stream,
        IntakeSettings(consumer_name=consumer_name),
        on_batch=on_batch,
    )
    asyncio.run(consumer.run())
    written = sum(1 for _ in (layout.data / "labels").iterdir()) + sum(
        1 for _ in (layout.data_seed / "labels").iterdir()
    )
    assert written == MESSAGES, f"{written} of {MESSAGES} annotations on disk"


def _timed(run) -> tuple[float, float]:
    """Wall and CPU seconds of ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    import rstream.connection

    from azaion_pipeline.lib.intake.consumer import SOCKET_READ_BYTES, StreamSettings
    from azaion_pipeline.lib.intake.publisher import publish
    from azaion_pipeline.services.rabbitmq import running

    default_read = rstream.connection.CHUNK_SIZE
    messages = _messages()
    payload_mb = sum(len(body) for body, _ in messages) / 1e6
    print(f"{MESSAGES} messages, {payload_mb:.0f} MB of msgpack bodies (~{IMAGE_KB} KB images)")
    best: dict[str, tuple[float, float]] = {}

    def keep_best(label: str, seconds: tuple[float, float]) -> None:
        best[label] = min(best.get(label, seconds), seconds)

    def bare(read_bytes: int) -> None:
        rstream.connection.CHUNK_SIZE = read_bytes
        asyncio.run(_bare_read(stream))

    with running(queue_name="bench-annotations") as node, tempfile.TemporaryDirectory() as tmp:
        stream = StreamSettings(
            host=node.host,
            port=node.stream_port,
            user=node.user,
            password=node.password,
            queue_name=node.queue_name,
        )
        asyncio.run(publish(stream, messages))
        bare(default_read)  # warm-up: the broker's segment files into the page cache
        for round_number in range(ROUNDS):
            root = Path(tmp) / f"round-{round_number}"
            keep_best("bare rstream, defaults", _timed(lambda: bare(default_read)))
            keep_best("bare rstream, same reads", _timed(lambda: bare(SOCKET_READ_BYTES)))
            keep_best(
                "consume (durable writes)",
                _timed(lambda: _intake(stream, root, f"bench-{round_number}")),  # noqa: B023
            )
            shutil.rmtree(root)
    for label, (wall, cpu) in best.items():
        print(
            f"{label:<26}: {wall:6.2f} s  {MESSAGES / wall:7.0f} msgs/s  "
            f"{payload_mb / wall:6.1f} MB/s  (CPU {cpu:5.2f} s)"
        )
    ours = best["consume (durable writes)"]
    for label in ("bare rstream, defaults", "bare rstream, same reads"):
        wall, cpu = best[label]
        print(
            f"consume / {label:<24}: {wall / ours[0]:5.2f}x wall, {cpu / ours[1]:5.2f}x CPU"
            + ("  (goal >= 0.8x)" if label.endswith("defaults") else "")
        )


if __name__ == "__main__":
    main()
