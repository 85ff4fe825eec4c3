"""Fixtures for every test folder: one real PostgreSQL per session, a fresh database per test
(the deploy tests and the Celery run use it as the Dagster instance)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from azaion_pipeline.services.postgres import create_database, postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[dict[str, str]]:
    with postgres() as env:
        yield env


@pytest.fixture
def pg_env(postgres_server, monkeypatch) -> dict[str, str]:
    """DAGSTER_PG_* of an empty database, also in os.environ (the instance config reads it)."""
    env = create_database(postgres_server, f"dagster_{uuid.uuid4().hex[:12]}")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
