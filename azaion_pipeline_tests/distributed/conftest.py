"""Shared fixtures: a real S3 server on loopback and small real annotated datasets on disk."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from azaion_pipeline.defs.store import PipelineStore
from azaion_pipeline.lib.classes import ClassCatalog
from azaion_pipeline.lib.dataset_store import DatasetStore
from azaion_pipeline.lib.layout import IMAGES, LABELS, SPLITS, AzaionLayout
from azaion_pipeline.lib.s3 import s3_client
from azaion_pipeline.lib.sample_data import generate_sample_data
from azaion_pipeline.lib.settings import load_settings
from azaion_pipeline.lib.split import DATA_YAML, data_yaml_text
from azaion_pipeline.services.seaweedfs import S3Server, seaweedfs_s3


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with seaweedfs_s3(["azaion-pipeline"]) as server:
        yield server


@pytest.fixture
def pipeline_store(s3_server: S3Server) -> PipelineStore:
    """The resource the workers use, on its own prefix and with the uploader identity."""
    return PipelineStore(
        endpoint_url=s3_server.endpoint,
        bucket=s3_server.buckets[0],
        access_key=s3_server.uploader.access_key,
        secret_key=s3_server.uploader.secret_key,
        prefix=f"t-{secrets.token_hex(4)}/",
        workers=8,
    )


@pytest.fixture
def dataset_store(s3_server: S3Server) -> DatasetStore:
    """The uploader identity, under a prefix of its own so tests never see each other's objects."""
    who = s3_server.uploader
    client = s3_client(s3_server.endpoint, who.access_key, who.secret_key, max_pool_connections=8)
    return DatasetStore(client, s3_server.buckets[0], f"t-{secrets.token_hex(4)}/", 8)


@pytest.fixture(scope="session")
def catalog() -> ClassCatalog:
    return ClassCatalog.load(load_settings().resolved_classes_file())


def split_folders(dataset_dir: Path, pairs: list[tuple[Path, Path]], catalog) -> Path:
    """A version in the split-folder layout (round-robin over splits); returns its data.yaml."""
    for index, (image, label) in enumerate(pairs):
        split = SPLITS[index % len(SPLITS)]
        for source, kind in ((image, IMAGES), (label, LABELS)):
            target = dataset_dir / split / kind / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    (dataset_dir / DATA_YAML).write_text(data_yaml_text(dataset_dir, catalog.model_names()))
    return dataset_dir / DATA_YAML


def sample_pairs(
    root: Path, catalog: ClassCatalog, images: int, seed: int
) -> list[tuple[Path, Path]]:
    layout = AzaionLayout.under(root)
    generate_sample_data(layout, catalog, images, seed=seed, size=(64, 48))
    pairs = []
    for folder in (layout.data, layout.data_seed):
        for image in sorted((folder / IMAGES).glob("*.jpg")):
            pairs.append((image, folder / LABELS / f"{image.stem}.txt"))
    return pairs
