"""Shared fixtures: an Azaion tree in tmp_path, an instance, a SeaweedFS S3 server on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from azaion_pipeline.defs.automation.resources import LandingResource
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.services.seaweedfs import REGION, S3Server, seaweedfs_s3

LABEL = "0 0.5 0.5 0.2 0.2\n"
LANDING_BUCKET = "azaion-landing"


def write_annotation(area_dir: Path, name: str | None = None, label: str = LABEL) -> str:
    """One image + label pair, as the Azaion queue consumer writes them."""
    name = name or uuid.uuid4().hex
    images, labels = AzaionLayout.images_and_labels(area_dir)
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    (images / f"{name}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not decoded by the sensor")
    (labels / f"{name}.txt").write_text(label)
    return name


def move_annotation(name: str, source: Path, target: Path) -> None:
    for kind, suffix in (("images", ".jpg"), ("labels", ".txt")):
        (target / kind).mkdir(parents=True, exist_ok=True)
        os.rename(source / kind / f"{name}{suffix}", target / kind / f"{name}{suffix}")


@pytest.fixture
def layout(tmp_path) -> AzaionLayout:
    return AzaionLayout.under(tmp_path / "azaion")


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def sensor_resources(layout):
    def resources(quiet_seconds: float = 0.0, **landing) -> dict:
        return {
            "storage": AzaionStorage(root_dir=str(layout.root)),
            "landing": LandingResource(quiet_seconds=quiet_seconds, **landing),
        }

    return resources


@pytest.fixture(scope="session")
def landing_server() -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS) on 127.0.0.1 with a landing bucket."""
    with seaweedfs_s3([LANDING_BUCKET]) as server:
        yield server


@dataclass(frozen=True)
class S3Landing:
    writer: Any  # the uploader's client: the Azaion side that lands batches
    reader: Any  # the downloader's client: the pipeline only reads the landing zone
    bucket: str
    prefix: str  # one per test, so tests sharing the server never see each other's batches
    endpoint: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@pytest.fixture
def s3_landing(landing_server, monkeypatch) -> S3Landing:
    # LandingResource takes credentials from the standard AWS chain: the read-only identity.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", landing_server.downloader.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", landing_server.downloader.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    endpoint = landing_server.endpoint
    return S3Landing(
        writer=landing_server.uploader.client(endpoint),
        reader=landing_server.downloader.client(endpoint),
        bucket=LANDING_BUCKET,
        prefix=f"landing-{uuid.uuid4().hex[:8]}",
        endpoint=endpoint,
    )
