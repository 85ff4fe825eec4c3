"""The local broker: streams over loopback with generated credentials, restartable, clean stop."""

from __future__ import annotations

import asyncio
import os

import pytest
from rstream import (
    AMQPMessage,
    Consumer,
    ConsumerOffsetSpecification,
    OffsetType,
    Producer,
    amqp_decoder,
)
from rstream.exceptions import AuthenticationFailure

from azaion_pipeline.services.rabbitmq import RabbitMQNode, port_open, running


async def _publish(node: RabbitMQNode, stream: str, bodies: list[bytes]) -> None:
    async with Producer(
        node.host, node.stream_port, username=node.user, password=node.password
    ) as producer:
        await producer.create_stream(stream, exists_ok=True)
        for body in bodies:
            await producer.send_wait(stream, AMQPMessage(body=body))


async def _read(node: RabbitMQNode, stream: str, count: int) -> list[bytes]:
    received: list[bytes] = []
    done = asyncio.Event()

    async def on_message(message, context) -> None:
        received.append(bytes(message.body))
        if len(received) == count:
            done.set()

    async with Consumer(
        node.host, node.stream_port, username=node.user, password=node.password
    ) as consumer:
        await consumer.subscribe(
            stream,
            on_message,
            decoder=amqp_decoder,
            offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST),
        )
        await asyncio.wait_for(done.wait(), 30)
    return received


def test_stream_survives_restart(rabbitmq: RabbitMQNode):
    asyncio.run(_publish(rabbitmq, "service-restart", [b"one", b"two"]))
    rabbitmq.restart()
    asyncio.run(_publish(rabbitmq, "service-restart", [b"three"]))
    assert asyncio.run(_read(rabbitmq, "service-restart", 3)) == [b"one", b"two", b"three"]


def test_guest_is_refused(rabbitmq: RabbitMQNode):
    async def login_as_guest() -> None:
        async with Producer(
            rabbitmq.host, rabbitmq.stream_port, username="guest", password="guest"
        ):
            pass

    with pytest.raises(AuthenticationFailure):
        asyncio.run(login_as_guest())
    assert set(rabbitmq.env) == {
        "RABBITMQ_HOST",
        "RABBITMQ_PORT",
        "RABBITMQ_USER",
        "RABBITMQ_PASSWORD",
        "RABBITMQ_QUEUE_NAME",
    }
    assert rabbitmq.env["RABBITMQ_PORT"] == str(rabbitmq.stream_port)


def _living_descendants(root: int) -> set[int]:
    """Processes below ``root`` (any session or group), zombies excluded."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found | ({root} & parents.keys())


def test_stop_leaves_nothing_behind():
    with running() as node:
        processes = _living_descendants(node.pid)
        assert len(processes) >= 2  # the shell's exec'd erl (beam) and erl_child_setup
        assert port_open(node.epmd_port)
    assert not processes & _living_descendants(1)
    assert not port_open(node.epmd_port)
    assert not port_open(node.stream_port) and not port_open(node.amqp_port)
    assert not node.base_dir.exists()
