"""Records in the object store: a step on another machine (another root) reads them."""

from __future__ import annotations

import dagster as dg

from azaion_pipeline.defs.io import RecordIOManager
from azaion_pipeline.lib.records import Record, load_record


class Dataset(Record):
    version: str


class Model(Record):
    dataset_version: str


def test_records_live_in_the_store_and_a_reader_with_an_empty_root_gets_them(
    tmp_path, pipeline_store
):
    @dg.asset
    def dataset() -> Dataset:
        return Dataset(version="v7")

    @dg.asset
    def model(dataset: Dataset) -> Model:
        return Model(dataset_version=dataset.version)

    instance = dg.DagsterInstance.ephemeral()
    writer = RecordIOManager(root_dir=str(tmp_path / "host-a"), store=pipeline_store)
    dg.materialize([dataset], resources={"io_manager": writer}, instance=instance)
    location = (
        instance.get_latest_materialization_event(dg.AssetKey("dataset"))
        .asset_materialization.metadata["record_path"]
        .value
    )
    assert location.startswith(f"s3://{pipeline_store.bucket}/{pipeline_store.prefix}")
    assert not (tmp_path / "host-a").exists()  # nothing written on the local root

    reader = RecordIOManager(root_dir=str(tmp_path / "host-b"), store=pipeline_store)
    result = dg.materialize(
        [dataset, model], selection=[model], resources={"io_manager": reader}, instance=instance
    )
    assert result.output_for_node("model").dataset_version == "v7"
    objects = pipeline_store.objects()
    stored = objects.get_bytes(location.removeprefix(f"s3://{pipeline_store.bucket}/"))
    assert load_record(stored.decode(), Dataset) == Dataset(version="v7")
