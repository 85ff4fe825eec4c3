"""Shared fixtures: an Azaion tree in tmp_path, an instance, a moto S3 server on loopback."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import dagster as dg
import pytest

from azaion_pipeline.defs.automation.resources import LandingResource
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.layout import AzaionLayout

LABEL = "0 0.5 0.5 0.2 0.2\n"


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
def s3_endpoint():
    """A real S3 API over HTTP on 127.0.0.1 (moto's server mode)."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint):
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket = f"landing-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket
