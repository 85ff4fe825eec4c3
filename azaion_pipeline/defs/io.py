"""The IO manager that carries typed records between assets.

A record is written once per run and asset to ``{root}/manifests/records/{asset}/{run_id}.json``
and its path is recorded in the materialization metadata. A downstream step reads the record
its own run wrote when the upstream ran in the same run; otherwise the one of the upstream's
latest materialization. Either way lineage travels inside the record, so overlapping runs
cannot pair one run's model with another run's dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import dagster as dg

from azaion_pipeline.lib.files import write_atomic
from azaion_pipeline.lib.records import Record, dump_record, load_record

RECORD_PATH_KEY = "record_path"
R = TypeVar("R", bound=Record)


class RecordIOManager(dg.ConfigurableIOManager):
    """Stores each asset's ``Record`` as JSON under the Azaion root."""

    root_dir: str

    def _path(self, asset_key: dg.AssetKey, run_id: str) -> Path:
        return (
            Path(self.root_dir).absolute()
            / "manifests"
            / "records"
            / Path(*asset_key.path)
            / f"{run_id}.json"
        )

    def write(self, asset_key: dg.AssetKey, run_id: str, record: Record) -> Path:
        """Store ``record`` as ``asset_key``'s output of run ``run_id``; returns its path."""
        path = self._path(asset_key, run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, dump_record(record).encode())
        return path

    def handle_output(self, context: dg.OutputContext, obj: Record | None) -> None:
        if obj is None:  # an optional output that was skipped
            return
        if not isinstance(obj, Record):
            raise dg.Failure(
                description=f"{context.asset_key.to_user_string()} returned a "
                f"{type(obj).__name__}, not a Record"
            )
        path = self.write(context.asset_key, context.run_id, obj)
        context.add_output_metadata({RECORD_PATH_KEY: dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Record:
        asset_key = context.asset_key
        expected = context.dagster_type.typing_type
        expected = expected if isinstance(expected, type) and issubclass(expected, Record) else None
        # The run that produced the upstream (this run, or the parent of a re-execution).
        producer_run = context.upstream_output.run_id if context.upstream_output else None
        same_run = self._path(asset_key, producer_run) if producer_run else None
        if same_run and same_run.exists():
            return load_record(same_run.read_text(), expected)
        record = latest_record(context.instance, asset_key, expected or Record)
        if record is None:
            raise dg.Failure(
                description=f"'{asset_key.to_user_string()}' has no stored record; "
                "materialize it first."
            )
        return record


def latest_record(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey | str, expected: type[R]
) -> R | None:
    """The record of ``asset_key``'s latest materialization, or None when it has none."""
    event = instance.get_latest_materialization_event(dg.AssetKey.from_coercible(asset_key))
    metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
    if RECORD_PATH_KEY not in metadata:
        return None
    return load_record(Path(metadata[RECORD_PATH_KEY].value).read_text(), expected)
