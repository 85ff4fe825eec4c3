"""The IO manager that carries typed records between assets.

A record is written once per run and asset to ``manifests/records/{asset}/{run_id}.json``: under
the Azaion root, or, when the pipeline store is configured, at that key in the object store, so
a step on another machine reads it. Its location is recorded in the materialization metadata. A
downstream step reads the record its own run wrote when the upstream ran in the same run;
otherwise the one of the upstream's latest materialization. Either way lineage travels inside
the record, so overlapping runs cannot pair one run's model with another run's dataset.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.store import PipelineStore
from azaion_pipeline.lib.files import write_atomic
from azaion_pipeline.lib.records import Record, dump_record, load_record

RECORD_PATH_KEY = "record_path"


class RecordIOManager(dg.ConfigurableIOManager):
    """Stores each asset's ``Record`` as JSON under the Azaion root or in the pipeline store."""

    root_dir: str
    store: PipelineStore = Field(default_factory=PipelineStore)

    @staticmethod
    def _relative(asset_key: dg.AssetKey, run_id: str) -> str:
        return str(PurePosixPath("manifests", "records", *asset_key.path, f"{run_id}.json"))

    def _location(self, asset_key: dg.AssetKey, run_id: str) -> str:
        """An s3:// URI with the store on, else a local path."""
        relative = self._relative(asset_key, run_id)
        if self.store.enabled:
            objects = self.store.objects()
            return objects.uri(objects.key(relative))
        return str(Path(self.root_dir).absolute() / relative)

    def _write(self, location: str, text: str) -> None:
        if location.startswith("s3://"):
            self.store.objects().put_bytes(self._key_of(location), text.encode())
        else:
            path = Path(location)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, text.encode())

    def _read(self, location: str) -> str | None:
        if location.startswith("s3://"):
            objects, key = self.store.objects(), self._key_of(location)
            return objects.get_bytes(key).decode() if objects.has(key) else None
        path = Path(location)
        return path.read_text() if path.exists() else None

    def _key_of(self, uri: str) -> str:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if bucket != self.store.bucket:
            raise dg.Failure(description=f"record {uri} is not in this store's bucket")
        return key

    def handle_output(self, context: dg.OutputContext, obj: Record | None) -> None:
        if obj is None:  # an optional output that was skipped
            return
        if not isinstance(obj, Record):
            raise dg.Failure(
                description=f"{context.asset_key.to_user_string()} returned a "
                f"{type(obj).__name__}, not a Record"
            )
        location = self._location(context.asset_key, context.run_id)
        self._write(location, dump_record(obj))
        context.add_output_metadata({RECORD_PATH_KEY: dg.MetadataValue.path(location)})

    def load_input(self, context: dg.InputContext) -> Record:
        asset_key = context.asset_key
        # The run that produced the upstream (this run, or the parent of a re-execution).
        producer_run = context.upstream_output.run_id if context.upstream_output else None
        text = self._read(self._location(asset_key, producer_run)) if producer_run else None
        if text is None:
            text = self._read(self._latest_record_location(context, asset_key))
        if text is None:
            raise dg.Failure(
                description=f"the record of '{asset_key.to_user_string()}' is gone from its store"
            )
        expected = context.dagster_type.typing_type
        expected = expected if isinstance(expected, type) and issubclass(expected, Record) else None
        return load_record(text, expected)

    @staticmethod
    def _latest_record_location(context: dg.InputContext, asset_key: dg.AssetKey) -> str:
        event = context.instance.get_latest_materialization_event(asset_key)
        metadata = (
            event.asset_materialization.metadata if event and event.asset_materialization else {}
        )
        if RECORD_PATH_KEY not in metadata:
            raise dg.Failure(
                description=f"'{asset_key.to_user_string()}' has no stored record; "
                "materialize it first."
            )
        return str(metadata[RECORD_PATH_KEY].value)
