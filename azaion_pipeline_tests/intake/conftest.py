"""Fixtures for the intake tests: one real RabbitMQ node (streams plugin) per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from azaion_pipeline.services.rabbitmq import RabbitMQNode, running


@pytest.fixture(scope="module")
def rabbitmq() -> Iterator[RabbitMQNode]:
    """A local broker on free loopback ports; tests use their own stream names on it."""
    with running() as node:
        yield node
