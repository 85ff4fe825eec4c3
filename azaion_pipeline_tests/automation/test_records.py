"""Records travel between assets through RecordIOManager, typed, with the run's own lineage."""

from pathlib import Path

import dagster as dg
import pytest

from azaion_pipeline.defs.io import RecordIOManager
from azaion_pipeline.lib.records import Record, dump_record, load_record


class Dataset(Record):
    version: str
    images: int


class Model(Record):
    dataset_version: str


def test_record_round_trip_keeps_type_and_fields():
    record = Dataset(version="v1", images=3)
    assert load_record(dump_record(record), Dataset) == record
    with pytest.raises(TypeError, match="expected Model"):
        load_record(dump_record(record), Model)


def test_downstream_reads_its_own_runs_record_not_the_latest(tmp_path):
    versions = iter(["A", "B"])

    @dg.asset
    def dataset() -> Dataset:
        return Dataset(version=next(versions), images=1)

    @dg.asset
    def model(dataset: Dataset) -> Model:
        return Model(dataset_version=dataset.version)

    resources = {"io_manager": RecordIOManager(root_dir=str(tmp_path))}
    instance = dg.DagsterInstance.ephemeral()
    first = dg.materialize([dataset, model], resources=resources, instance=instance)
    assert first.output_for_node("model").dataset_version == "A"
    # A newer dataset lands; a model-only run then reads the latest dataset record (B).
    dg.materialize([dataset], resources=resources, instance=instance)
    later = dg.materialize(
        [dataset, model], selection=[model], resources=resources, instance=instance
    )
    assert later.output_for_node("model").dataset_version == "B"
    path = (
        instance.get_latest_materialization_event(dg.AssetKey("model"))
        .asset_materialization.metadata["record_path"]
        .value
    )
    assert load_record(Path(path).read_text(), Model).dataset_version == "B"
