"""Shared fixtures: a real S3 server on loopback and dataset versions built by the real lib."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from azaion_pipeline.defs.store import PipelineStore
from azaion_pipeline.lib.classes import ClassCatalog
from azaion_pipeline.lib.dataset.annotations import ValidationRules
from azaion_pipeline.lib.dataset.augment import AugmentSettings, augment_pending, store_dir
from azaion_pipeline.lib.dataset.catalogue import Catalogue
from azaion_pipeline.lib.dataset.ingest import ingest
from azaion_pipeline.lib.dataset.versions import DatasetVersion, build_version, version_label
from azaion_pipeline.lib.dataset_store import DatasetStore
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.s3 import s3_client
from azaion_pipeline.lib.sample_data import generate_sample_data
from azaion_pipeline.lib.settings import load_settings
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


class Host:
    """An Azaion root whose dataset versions are built through the lib, as the dataset
    assets build them (ingest, augment, version), and the records they would return."""

    def __init__(self, root: Path, catalog: ClassCatalog, variants: int = 1):
        self.layout = AzaionLayout.under(root)
        self.catalog = catalog
        self.settings = AugmentSettings(variants=variants)

    def add_samples(self, images: int, seed: int) -> list[str]:
        """Writes ``images`` valid annotations into data/; returns their names."""
        return generate_sample_data(
            self.layout, self.catalog, images, seed=seed, size=(64, 48)
        ).valid

    def version(self) -> DatasetVersion:
        rules = ValidationRules(self.catalog.valid_ids())
        with Catalogue.of(self.layout) as catalogue:
            ingest(self.layout, catalogue, rules, workers=1)
            augment_pending(catalogue, self.layout.processed, self.settings, 1)
            built = build_version(
                catalogue,
                self.layout,
                store_dir(self.layout.processed, self.settings),
                self.settings.key,
                self.catalog.model_names(),
            )
        return DatasetVersion(
            version=version_label(built.name),
            id=built.id,
            directory=built.directory,
            data_yaml=built.data_yaml,
            augmented_version=built.id,
            catalogue=catalogue.path,
            settings_key=self.settings.key,
            class_names=self.catalog.model_names(),
            images=built.images,
            reused_existing=built.reused,
            preview=None,
        )


@pytest.fixture
def host(tmp_path: Path, catalog: ClassCatalog) -> Host:
    return Host(tmp_path / "host", catalog)
