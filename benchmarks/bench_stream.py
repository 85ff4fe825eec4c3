"""Intake: the stream consumer writing annotations durably vs a bare rstream reader, same messages.

Goal (issue 10): ``azaion-pipeline consume`` (decode, check, route, atomic writes, a flush and
a stored offset per sealed batch) reaches >= 0.8x the rate of a bare rstream consumer that only
reads the same messages, in the same run against the same local RabbitMQ node. Also prints
messages/s and MB/s. ``BENCH_STREAM_MESSAGES`` / ``BENCH_STREAM_IMAGE_KB`` change the load.
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


async def _bare_read(stream) -> float:
    """Seconds for a plain rstream consumer to receive every message's body."""
    from rstream import Consumer, ConsumerOffsetSpecification, OffsetType, amqp_decoder

    received = 0
    done = asyncio.Event()

    async def on_message(message, _context) -> None:
        nonlocal received
        bytes(message.body)
        received += 1
        if received == MESSAGES:
            done.set()

    started = time.perf_counter()
    async with Consumer(**stream.client_kwargs()) as consumer:
        await consumer.subscribe(
            stream.queue_name,
            on_message,
            decoder=amqp_decoder,
            offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST),
        )
        await done.wait()
        return time.perf_counter() - started


def _intake(stream, root: Path, consumer_name: str) -> float:
    """Seconds for our consumer to apply every message and seal (flush, store the offset)."""
    from azaion_pipeline.lib.intake.batches import BatchLog
    from azaion_pipeline.lib.intake.consumer import IntakeConsumer, IntakeSettings
    from azaion_pipeline.lib.intake.store import AnnotationStore
    from azaion_pipeline.lib.layout import AzaionLayout

    layout = AzaionLayout.under(root)
    finished: list[float] = []

    def on_batch(_batch_id: str) -> None:
        if consumer.report.consumed >= MESSAGES:
            finished.append(time.perf_counter())
            consumer.stop()

    consumer = IntakeConsumer(
        AnnotationStore(layout),
        BatchLog(layout),
        stream,
        IntakeSettings(consumer_name=consumer_name),
        on_batch=on_batch,
    )
    started = time.perf_counter()
    asyncio.run(consumer.run())
    written = sum(1 for _ in (layout.data / "labels").iterdir()) + sum(
        1 for _ in (layout.data_seed / "labels").iterdir()
    )
    assert written == MESSAGES, f"{written} of {MESSAGES} annotations on disk"
    return finished[0] - started


def main() -> None:
    from azaion_pipeline.lib.intake.consumer import StreamSettings
    from azaion_pipeline.lib.intake.publisher import publish
    from azaion_pipeline.services.rabbitmq import running

    messages = _messages()
    payload_mb = sum(len(body) for body, _ in messages) / 1e6
    print(f"{MESSAGES} messages, {payload_mb:.0f} MB of msgpack bodies (~{IMAGE_KB} KB images)")
    with running(queue_name="bench-annotations") as node, tempfile.TemporaryDirectory() as tmp:
        stream = StreamSettings(
            host=node.host,
            port=node.stream_port,
            user=node.user,
            password=node.password,
            queue_name=node.queue_name,
        )
        asyncio.run(publish(stream, messages))
        bare, ours = float("inf"), float("inf")
        for round_number in range(ROUNDS):
            bare = min(bare, asyncio.run(_bare_read(stream)))
            root = Path(tmp) / f"round-{round_number}"
            ours = min(ours, _intake(stream, root, consumer_name=f"bench-{round_number}"))
            shutil.rmtree(root)
    for label, seconds in (("bare rstream read", bare), ("consume (durable writes)", ours)):
        print(
            f"{label:<26}: {seconds:6.2f} s  {MESSAGES / seconds:7.0f} msgs/s  "
            f"{payload_mb / seconds:6.1f} MB/s"
        )
    print(f"ratio consume / bare        : {bare / ours:6.2f}x (goal >= 0.8x)")
