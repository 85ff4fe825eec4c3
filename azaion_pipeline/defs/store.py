"""The object store that lets a step run on a machine without the Azaion root.

Dataset objects and version manifests, records, weights and exports live there by sha256
(``lib/dataset_store.py``); each machine keeps a node-local cache of what it pulled. Without a
bucket the store is off and everything stays on the local root (one host, or a shared volume).
"""

from __future__ import annotations

import functools
from pathlib import Path

import dagster as dg
from pydantic import Field

from azaion_pipeline.lib.champion import Champion, read_champion
from azaion_pipeline.lib.dataset_store import DEFAULT_WORKERS, DatasetStore, NodeCache
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.portable import share_champion, stored_champion
from azaion_pipeline.lib.s3 import s3_client


@functools.cache
def _dataset_store(
    endpoint_url: str | None,
    bucket: str,
    access_key: str,
    secret_key: str,
    region: str,
    prefix: str,
    workers: int,
) -> DatasetStore:
    """One client and connection pool per process and configuration (the resource is frozen)."""
    client = s3_client(endpoint_url, access_key, secret_key, region, max_pool_connections=workers)
    return DatasetStore(client, bucket, prefix, workers)


class PipelineStore(dg.ConfigurableResource):
    endpoint_url: str | None = Field(default=None, description="S3 endpoint; None = AWS.")
    bucket: str | None = Field(default=None, description="None: no store, one shared root.")
    access_key: str | None = None
    secret_key: str | None = None
    region: str = "us-east-1"
    prefix: str = Field(default="", description="Key prefix inside the bucket (ends with /).")
    cache_dir: str | None = Field(
        default=None, description="Node-local cache; default {Azaion root}/node-cache."
    )
    workers: int = Field(
        default=DEFAULT_WORKERS, ge=1, description="Parallel transfers of one sync."
    )

    @property
    def enabled(self) -> bool:
        return bool(self.bucket)

    def objects(self) -> DatasetStore:
        if not self.enabled:
            raise RuntimeError("no object store configured (AZAION_STORE_BUCKET)")
        return _dataset_store(
            self.endpoint_url,
            self.bucket,
            self.access_key or "",
            self.secret_key or "",
            self.region,
            self.prefix,
            self.workers,
        )

    def node_cache(self, root_dir: str | Path) -> NodeCache:
        return NodeCache(self.cache_dir or Path(root_dir) / "node-cache")

    def champion(self, layout: AzaionLayout, with_files: bool = True) -> Champion | None:
        """The champion as this host can use it: the store's when it is on (its files fetched
        into this node's cache unless ``with_files`` is off: then only its record is read),
        else, or before any promotion reached the store, the root's."""
        cache = self.node_cache(layout.root) if with_files else None
        stored = stored_champion(self.objects(), cache) if self.enabled else None
        return stored or read_champion(layout)

    def share_champion(self, champion: Champion) -> None:
        """Makes a champion just promoted on this host every host's (no store: nothing)."""
        if self.enabled:
            share_champion(champion, self.objects())
