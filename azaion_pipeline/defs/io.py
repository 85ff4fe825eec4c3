"""The IO manager that carries typed records between assets.

A record is written once per run and asset to ``manifests/records/{asset}/{run_id}.json``: under
the Azaion root, or, when the pipeline store is configured, at that key in the object store, so
a step on another machine reads it; the files it names then go to the store too, and a reader
that lacks them gets node-cache copies (``lib/portable.py``). Its location is recorded in the materialization metadata. A
downstream step reads the record its own run wrote when the upstream ran in the same run;
otherwise the one of the upstream's latest materialization. Either way lineage travels inside
the record, so overlapping runs cannot pair one run's model with another run's dataset.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TypeVar

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.store import PipelineStore
from azaion_pipeline.lib.files import write_atomic
from azaion_pipeline.lib.portable import Localiser, share
from azaion_pipeline.lib.records import Record, dump_record, load_record

RECORD_PATH_KEY = "record_path"
R = TypeVar("R", bound=Record)


def _store_key(uri: str, store: PipelineStore) -> str:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not store.enabled or bucket != store.bucket:
        raise dg.Failure(description=f"record {uri} is not in this pipeline store's bucket")
    return key


def read_record_text(location: str, store: PipelineStore) -> str | None:
    """The stored JSON at ``location`` (an s3:// URI in the store, or a path); None if absent."""
    if location.startswith("s3://"):
        objects, key = store.objects(), _store_key(location, store)
        return objects.get_bytes(key).decode() if objects.has(key) else None
    path = Path(location)
    return path.read_text() if path.exists() else None


class RecordIOManager(dg.ConfigurableIOManager):
    """Stores each asset's ``Record`` as JSON under the Azaion root or in the pipeline store."""

    root_dir: str
    store: PipelineStore = Field(default_factory=PipelineStore)

    def _location(self, asset_key: dg.AssetKey, run_id: str) -> str:
        """An s3:// URI with the store on, else a local path."""
        relative = str(PurePosixPath("manifests", "records", *asset_key.path, f"{run_id}.json"))
        if self.store.enabled:
            objects = self.store.objects()
            return objects.uri(objects.key(relative))
        return str(Path(self.root_dir).absolute() / relative)

    def write(self, asset_key: dg.AssetKey, run_id: str, record: Record) -> str:
        """Store ``record`` as ``asset_key``'s output of run ``run_id``; returns its location."""
        location, text = self._location(asset_key, run_id), dump_record(record)
        if location.startswith("s3://"):
            self.store.objects().put_bytes(_store_key(location, self.store), text.encode())
        else:
            Path(location).parent.mkdir(parents=True, exist_ok=True)
            write_atomic(Path(location), text.encode())
        return location

    def handle_output(self, context: dg.OutputContext, obj: Record | None) -> None:
        if obj is None:  # an optional output that was skipped
            return
        if not isinstance(obj, Record):
            raise dg.Failure(
                description=f"{context.asset_key.to_user_string()} returned a "
                f"{type(obj).__name__}, not a Record"
            )
        if self.store.enabled:  # the files it names go first: a record never points at nothing
            share(obj, self.store.objects(), self.store.node_cache(self.root_dir))
        location = self.write(context.asset_key, context.run_id, obj)
        context.add_output_metadata({RECORD_PATH_KEY: dg.MetadataValue.path(location)})

    def load_input(self, context: dg.InputContext) -> Record:
        asset_key = context.asset_key
        expected = context.dagster_type.typing_type
        expected = expected if isinstance(expected, type) and issubclass(expected, Record) else None
        # The run that produced the upstream (this run, or the parent of a re-execution).
        producer_run = context.upstream_output.run_id if context.upstream_output else None
        same_run = (
            read_record_text(self._location(asset_key, producer_run), self.store)
            if producer_run
            else None
        )
        record = (
            load_record(same_run, expected)
            if same_run is not None
            else latest_record(context.instance, asset_key, expected or Record, self.store)
        )
        if record is None:
            raise dg.Failure(
                description=f"'{asset_key.to_user_string()}' has no stored record; "
                "materialize it first."
            )
        if self.store.enabled:  # on another machine: fetch (or sync) what the record names
            cache = self.store.node_cache(self.root_dir)
            localise = Localiser(self.store.objects(), cache, Path(self.root_dir), context.log.info)
            return localise(record)
        return record


def latest_record(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey | str,
    expected: type[R],
    store: PipelineStore | None = None,
) -> R | None:
    """The record of ``asset_key``'s latest materialization, or None when it has none."""
    event = instance.get_latest_materialization_event(dg.AssetKey.from_coercible(asset_key))
    metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
    if RECORD_PATH_KEY not in metadata:
        return None
    text = read_record_text(str(metadata[RECORD_PATH_KEY].value), store or PipelineStore())
    return load_record(text, expected) if text is not None else None
