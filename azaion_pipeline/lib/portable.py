"""The files a record points at, made reachable on another machine through the object store.

``share`` runs where a record is produced: it uploads the files it names (dataset version,
weights, export) unless the store has them. A ``Localiser`` runs where a record is consumed:
each path outside this worker's own Azaion root and node cache is replaced by the node-cache
copy, fetched by sha256 (a dataset version is synced: only the objects the node lacks). A path
under another root is never read even when it happens to be visible (one host, or a stray
mount): a worker reads only what it owns or fetched and verified. The champion travels the
same way (``share_champion`` where it is promoted, ``stored_champion`` wherever it is read).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from azaion_pipeline.lib.champion import Champion
from azaion_pipeline.lib.dataset.versions import DatasetVersion
from azaion_pipeline.lib.dataset_store import DatasetStore, NodeCache, version_manifest
from azaion_pipeline.lib.distribution import Release
from azaion_pipeline.lib.export import ExportedModel, TensorrtExport
from azaion_pipeline.lib.records import Record
from azaion_pipeline.lib.train import TrainedWeights

log = logging.getLogger(__name__)
R = TypeVar("R", bound=Record)
# The champion's record in the store (its files are objects by sha256), so any host reads it.
CHAMPION_KEY = "models/champion.json"


def share_champion(champion: Champion, store: DatasetStore) -> None:
    """Makes ``champion`` the store's: its files by sha256 first, then its record."""
    store.put_file(champion.weights, champion.weights_sha256)
    if champion.onnx and champion.onnx_sha256:
        store.put_file(champion.onnx, champion.onnx_sha256)
    store.put_bytes(store.key(CHAMPION_KEY), champion.model_dump_json().encode())


def stored_champion(store: DatasetStore, cache: NodeCache | None) -> Champion | None:
    """The store's champion with its files in this node's ``cache`` (fetched once, verified);
    without a cache, the record alone (its paths are the promoting host's)."""
    key = store.key(CHAMPION_KEY)
    if not store.has(key):
        return None
    champion = Champion.model_validate_json(store.get_bytes(key))
    if cache is None:
        return champion
    update = {"weights": store.fetch_file(champion.weights_sha256, champion.weights.name, cache)}
    if champion.onnx and champion.onnx_sha256:
        update["onnx"] = store.fetch_file(champion.onnx_sha256, champion.onnx.name, cache)
    return champion.model_copy(update=update)


def share(record: Record, store: DatasetStore, cache: NodeCache) -> None:
    """Uploads what ``record`` points at and the store lacks; records without files: nothing."""
    if isinstance(record, DatasetVersion):
        if not store.has(store.manifest_key(record.version)):
            manifest, files = version_manifest(record)
            pushed = store.push_version(manifest, files, cache)
            log.info("dataset %s pushed: %s", record.version, pushed)
    elif isinstance(record, TrainedWeights):
        store.put_file(record.weights_path, record.weights_sha256)
    elif isinstance(record, ExportedModel):
        store.put_file(record.file.path, record.file.sha256)
    elif isinstance(record, TensorrtExport) and record.engine:
        share(record.engine, store, cache)


class Localiser:
    """Makes records usable by a worker whose own files are under ``root`` and ``cache``."""

    def __init__(
        self,
        store: DatasetStore,
        cache: NodeCache,
        root: Path,
        report: Callable[[str], None] = log.info,
    ):
        self.store, self.cache, self.report = store, cache, report
        self.own = (Path(root).absolute(), cache.root)

    def _owned(self, path: Path) -> bool:
        return any(path.is_relative_to(own) for own in self.own) and path.exists()

    def _dataset_yaml(self, version: str, data_yaml: Path) -> Path:
        if self._owned(data_yaml):
            return data_yaml
        node_yaml, pulled = self.store.pull_version(version, self.cache)
        self.report(
            f"dataset {version} synced into {self.cache.root}: downloaded {pulled.transferred} "
            f"of {pulled.objects} objects ({pulled.bytes} bytes)"
        )
        return node_yaml

    def _file(self, path: Path, sha256: str) -> Path:
        return path if self._owned(path) else self.store.fetch_file(sha256, path.name, self.cache)

    def __call__(self, record: R) -> R:
        """``record`` with every path usable here."""
        update: dict = {}
        if isinstance(record, DatasetVersion):
            update["data_yaml"] = self._dataset_yaml(record.version, record.data_yaml)
            update["directory"] = update["data_yaml"].parent
        elif isinstance(record, TrainedWeights):
            update["weights_path"] = self._file(record.weights_path, record.weights_sha256)
            update["data_yaml"] = self._dataset_yaml(record.dataset_version, record.data_yaml)
        elif isinstance(record, ExportedModel):
            path = self._file(record.file.path, record.file.sha256)
            update["file"] = record.file.model_copy(update={"path": path})
            update["source"] = self(record.source)
        elif isinstance(record, TensorrtExport) and record.engine:
            update["engine"] = self(record.engine)
        elif isinstance(record, Release):
            update["artifacts"] = tuple(
                a.model_copy(update={"export": self(a.export)}) for a in record.artifacts
            )
        return record.model_copy(update=update) if update else record
