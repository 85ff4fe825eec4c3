"""Seeding upstream assets in a test instance with real records, the way a finished run leaves them."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg

from azaion_pipeline.defs.io import RECORD_PATH_KEY, RecordIOManager
from azaion_pipeline.lib.records import Record


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
