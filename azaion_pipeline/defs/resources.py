"""Resources shared by every stage, and their default wiring."""

from __future__ import annotations

import os

import dagster as dg

from azaion_pipeline.defs.io import RecordIOManager
from azaion_pipeline.defs.store import PipelineStore
from azaion_pipeline.lib.classes import ClassCatalog
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.settings import load_settings


class AzaionStorage(dg.ConfigurableResource):
    """The Azaion root on local disk (or a mounted volume) and the class catalogue."""

    root_dir: str
    data_dir: str | None = None
    data_seed_dir: str | None = None
    data_deleted_dir: str | None = None
    classes_file: str | None = None

    def layout(self) -> AzaionLayout:
        return AzaionLayout.under(
            self.root_dir, self.data_dir, self.data_seed_dir, self.data_deleted_dir
        )

    def classes(self) -> ClassCatalog:
        return ClassCatalog.load(self.classes_file or load_settings().resolved_classes_file())

    @classmethod
    def from_settings(cls) -> AzaionStorage:
        settings = load_settings()

        def text(path):
            return str(path) if path else None

        return cls(
            root_dir=str(settings.root_dir),
            data_dir=text(settings.data_dir),
            data_seed_dir=text(settings.data_seed_dir),
            data_deleted_dir=text(settings.data_deleted_dir),
            classes_file=str(settings.resolved_classes_file()),
        )


def pipeline_store_from_env() -> PipelineStore:
    """The shared object store when ``AZAION_STORE_BUCKET`` is set; otherwise none (one host)."""
    if not os.environ.get("AZAION_STORE_BUCKET"):
        return PipelineStore()
    return PipelineStore(
        endpoint_url=os.environ.get("AZAION_STORE_ENDPOINT"),
        bucket=os.environ["AZAION_STORE_BUCKET"],
        access_key=dg.EnvVar("AZAION_STORE_ACCESS_KEY"),
        secret_key=dg.EnvVar("AZAION_STORE_SECRET_KEY"),
        prefix=os.environ.get("AZAION_STORE_PREFIX", ""),
        cache_dir=os.environ.get("AZAION_NODE_CACHE_DIR"),
    )


@dg.definitions
def shared_resources() -> dg.Definitions:
    storage = AzaionStorage.from_settings()
    store = pipeline_store_from_env()
    return dg.Definitions(
        resources={
            "storage": storage,
            "pipeline_store": store,
            "io_manager": RecordIOManager(root_dir=storage.root_dir, store=store),
        }
    )
