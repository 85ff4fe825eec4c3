"""Fixtures for the intake tests: one real RabbitMQ node (streams plugin) per test module.

Tests share the module's node and each use their own stream (``stream_settings``), so they
never see each other's messages.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from rstream import Consumer
from rstream.exceptions import OffsetNotFound

from azaion_pipeline.lib.intake.batches import BatchLog, BatchManifest
from azaion_pipeline.lib.intake.consumer import (
    IntakeConsumer,
    IntakeSettings,
    StreamSettings,
    stream_lag,
)
from azaion_pipeline.lib.intake.messages import AnnotationStatus
from azaion_pipeline.lib.intake.publisher import publish
from azaion_pipeline.lib.intake.store import AnnotationStore
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.services.rabbitmq import RabbitMQNode, running

CLI = str(Path(sys.executable).with_name("azaion-pipeline"))


@pytest.fixture(scope="module")
def rabbitmq() -> Iterator[RabbitMQNode]:
    """A local broker on free loopback ports."""
    with running() as node:
        yield node


@pytest.fixture
def stream_settings(rabbitmq: RabbitMQNode) -> StreamSettings:
    """The node's settings with a stream of this test's own."""
    env = {**rabbitmq.env, "RABBITMQ_QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}"}
    return StreamSettings(
        host=env["RABBITMQ_HOST"],
        port=int(env["RABBITMQ_PORT"]),
        user=env["RABBITMQ_USER"],
        password=env["RABBITMQ_PASSWORD"],
        queue_name=env["RABBITMQ_QUEUE_NAME"],
    )


def env_of(stream: StreamSettings, root: Path, **intake: object) -> dict[str, str]:
    """The environment a consumer process gets: Azaion's RABBITMQ_* names plus ours."""
    return {
        **os.environ,
        "RABBITMQ_HOST": stream.host,
        "RABBITMQ_PORT": str(stream.port),
        "RABBITMQ_USER": stream.user,
        "RABBITMQ_PASSWORD": stream.password.get_secret_value(),
        "RABBITMQ_QUEUE_NAME": stream.queue_name,
        "AZAION_ROOT_DIR": str(root),
        **{f"AZAION_INTAKE_{key.upper()}": str(value) for key, value in intake.items()},
    }


def jpeg(seed: int, size: tuple[int, int] = (32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (seed * 37 % 256, seed * 91 % 256, seed * 13 % 256)).save(buffer, "JPEG")
    return buffer.getvalue()


def send(stream: StreamSettings, messages: list[tuple[bytes, AnnotationStatus | int]]) -> None:
    assert asyncio.run(publish(stream, messages)) == len(messages)


def consume(stream: StreamSettings, root: Path, idle_s: float = 1.0, **intake: object):
    """Run the consumer in this process until the stream has been idle for ``idle_s``."""
    layout = AzaionLayout.under(root)
    consumer = IntakeConsumer(
        AnnotationStore(layout),
        BatchLog(layout),
        stream,
        IntakeSettings(**intake),
        until_idle_s=idle_s,
    )
    return asyncio.run(consumer.run())


def stored_offset(stream: StreamSettings, consumer_name: str = "azaion-pipeline-intake") -> int:
    async def query() -> int:
        async with Consumer(**stream.client_kwargs()) as client:
            try:
                return await client.query_offset(stream.queue_name, consumer_name)
            except OffsetNotFound:
                return -1

    return asyncio.run(query())


def lag(stream: StreamSettings, consumer_name: str = "azaion-pipeline-intake") -> int:
    """The last offset on the server minus the stored offset.

    Stored offsets take stream offsets of their own, so message offsets are not dense.
    """
    return asyncio.run(stream_lag(stream, consumer_name))


def start_consumer(stream: StreamSettings, root: Path, *args: str, **intake) -> subprocess.Popen:
    return subprocess.Popen(
        [CLI, "consume", *args],
        env=env_of(stream, root, **intake),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(condition, timeout_s: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def manifests(root: Path) -> list[BatchManifest]:
    log = BatchLog(AzaionLayout.under(root))
    ids, _ = log.sealed_since(0)
    return [log.load(batch_id) for batch_id in ids]
