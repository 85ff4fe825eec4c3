"""The files a record points at, made reachable on another machine through the object store.

``share`` runs where a record is produced: it uploads the files it names (dataset version,
weights, export) unless the store has them. ``localise`` runs where a record is consumed: each
path that does not exist on this machine is replaced by the node-cache copy, fetched by sha256
(a dataset version is synced: only the objects the node lacks). Paths that exist are kept:
every path a record names is content-addressed, so the same path holds the same bytes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TypeVar

from azaion_pipeline.lib.dataset_store import DatasetStore, NodeCache, build_manifest, version_pairs
from azaion_pipeline.lib.distribution import Release
from azaion_pipeline.lib.export import ExportedModel, TensorrtExport
from azaion_pipeline.lib.records import Record
from azaion_pipeline.lib.split import DatasetVersion
from azaion_pipeline.lib.train import TrainedWeights

log = logging.getLogger(__name__)
R = TypeVar("R", bound=Record)


def share(record: Record, store: DatasetStore, cache: NodeCache) -> None:
    """Uploads what ``record`` points at and the store lacks; records without files: nothing."""
    if isinstance(record, DatasetVersion):
        if not store.has(store.manifest_key(record.version)):
            names, pairs = version_pairs(record.data_yaml)
            manifest, files = build_manifest(record.version, names, pairs)
            pushed = store.push_version(manifest, files, cache)
            log.info("dataset %s pushed: %s", record.version, pushed)
    elif isinstance(record, TrainedWeights):
        store.put_file(record.weights_path, record.weights_sha256)
    elif isinstance(record, ExportedModel):
        store.put_file(record.file.path, record.file.sha256)
    elif isinstance(record, TensorrtExport) and record.engine:
        share(record.engine, store, cache)


def _dataset_yaml(version: str, data_yaml: Path, store: DatasetStore, cache: NodeCache) -> Path:
    if data_yaml.exists():
        return data_yaml
    node_yaml, pulled = store.pull_version(version, cache)
    log.info("dataset %s synced into %s: %s", version, cache.root, pulled)
    return node_yaml


def _file(path: Path, sha256: str, store: DatasetStore, cache: NodeCache) -> Path:
    return path if path.exists() else store.fetch_file(sha256, path.name, cache)


def localise(record: R, store: DatasetStore, cache: NodeCache) -> R:
    """``record`` with every path usable on this machine."""
    update: dict = {}
    if isinstance(record, DatasetVersion):
        update["data_yaml"] = _dataset_yaml(record.version, record.data_yaml, store, cache)
    elif isinstance(record, TrainedWeights):
        update["weights_path"] = _file(record.weights_path, record.weights_sha256, store, cache)
        update["data_yaml"] = _dataset_yaml(record.dataset_version, record.data_yaml, store, cache)
    elif isinstance(record, ExportedModel):
        file = record.file.model_copy(
            update={"path": _file(record.file.path, record.file.sha256, store, cache)}
        )
        update = {"file": file, "source": localise(record.source, store, cache)}
    elif isinstance(record, TensorrtExport) and record.engine:
        update["engine"] = localise(record.engine, store, cache)
    elif isinstance(record, Release):
        update["artifacts"] = tuple(
            a.model_copy(update={"export": localise(a.export, store, cache)})
            for a in record.artifacts
        )
    return record.model_copy(update=update) if update else record
