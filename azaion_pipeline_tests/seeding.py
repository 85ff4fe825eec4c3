"""Seeding upstream assets in a test instance with real records, the way a finished run leaves them."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg

from azaion_pipeline.defs.io import RECORD_PATH_KEY, RecordIOManager
from azaion_pipeline.lib.dataset.versions import DatasetVersion
from azaion_pipeline.lib.hashing import sha256_file
from azaion_pipeline.lib.records import Record
from azaion_pipeline.lib.train import TrainedWeights


def seed_records(instance: dg.DagsterInstance, root: Path, **records: Record) -> None:
    """For each asset, store its record under ``root`` and report a runless materialization
    pointing at it: a downstream run then loads it as the asset's latest output."""
    io_manager = RecordIOManager(root_dir=str(root))
    for key, record in records.items():
        path = io_manager.write(dg.AssetKey(key), f"seed-{uuid.uuid4().hex}", record)
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                key, metadata={RECORD_PATH_KEY: dg.MetadataValue.path(str(path))}
            )
        )


def seeded_instance(root: Path, **records: Record) -> dg.DagsterInstance:
    """A fresh ephemeral instance with each named asset's record seeded."""
    instance = dg.DagsterInstance.ephemeral()
    seed_records(instance, root, **records)
    return instance


def upstream(*keys: str) -> list[dg.SourceAsset]:
    """Upstream assets a test does not run, loaded from their stored records by the IO manager."""
    return [dg.SourceAsset(key) for key in keys]


def dataset_record(root: Path, version: str) -> DatasetVersion:
    """A DatasetVersion as training_dataset leaves it (no files behind it)."""
    directory = root / "datasets" / f"azaion-{version}"
    return DatasetVersion(
        version=version,
        id=version,
        directory=directory,
        data_yaml=directory / "data.yaml",
        augmented_version="augmented",
        catalogue=root / "catalogue" / "catalogue.sqlite",
        settings_key="settings",
        class_names={0: "ArmorVehicle"},
        images={"train": 1, "valid": 1, "test": 1},
        reused_existing=False,
        preview=None,
    )


def trained_record(weights: Path, dataset_version: str, data_yaml: Path) -> TrainedWeights:
    """TrainedWeights of the real file ``weights`` as trained_model leaves them (no run dir)."""
    return TrainedWeights(
        weights_path=weights,
        weights_sha256=sha256_file(weights),
        dataset_version=dataset_version,
        data_yaml=data_yaml,
        imgsz=64,
        class_names={0: "ArmorVehicle"},
        recipe={},
        run_dir=weights.parent,
        first_epoch=1,
        resumed_from=None,
        epochs_table=[],
        seconds=0.0,
        test=None,
        results_plot=None,
        confusion_matrix_plot=None,
    )
