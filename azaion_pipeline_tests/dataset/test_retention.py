"""Retention removes only what nothing references; a published model's version survives it;
catalogue snapshots are kept while needed and restore the catalogue as it was."""

from __future__ import annotations

import json

import dagster as dg

from azaion_pipeline.defs.dataset.retention import dataset_retention_job
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.defs.store import PipelineStore
from azaion_pipeline.lib.champion import champion_record
from azaion_pipeline.lib.dataset.augment import AugmentSettings, augment_pending, store_dir
from azaion_pipeline.lib.dataset.catalogue import Catalogue, catalogue_path, restore_catalogue
from azaion_pipeline.lib.dataset.retention import apply_retention, snapshots, version_label
from azaion_pipeline.lib.dataset.versions import read_list
from azaion_pipeline.lib.layout import SPLITS


def delete(layout, name: str) -> None:
    for sub, suffix in (("images", ".jpg"), ("labels", ".txt")):
        (layout.data / sub / f"{name}{suffix}").unlink()


def listed_files(version) -> set[str]:
    return {image for split in SPLITS for image in read_list(version.directory, split)}


def store_images(layout, settings) -> set[str]:
    return {p.name for p in (store_dir(layout.processed, settings) / "images").iterdir()}


def three_versions(harness, layout, settings):
    report = harness.add_samples(8, seed=1)  # 7 in data/
    published = harness.build(settings)[2]
    delete(layout, report.valid[0])
    middle = harness.build(settings)[2]
    delete(layout, report.valid[1])
    harness.add_samples(2, seed=2)
    newest = harness.build(settings)[2]
    return report, published, middle, newest


def test_retention_keeps_referenced_versions_and_removes_the_rest(harness, layout):
    settings = AugmentSettings(variants=1)
    report, published, middle, newest = three_versions(harness, layout, settings)
    old_settings = AugmentSettings(variants=0)
    with Catalogue.of(layout) as catalogue:
        augment_pending(catalogue, layout.processed, old_settings, 1)  # an abandoned config
        result = apply_retention(catalogue, layout, 1, {version_label(published.name)})
        assert {v["name"] for v in catalogue.versions()} == {published.name, newest.name}

    assert result.removed_versions == [middle.name] and not middle.directory.exists()
    assert published.data_yaml.exists() and newest.data_yaml.exists()
    assert result.removed_settings == [old_settings.key]
    assert not store_dir(layout.processed, old_settings).exists()
    # Every file a kept version lists is still there; deleted-annotation files nobody
    # lists are gone (report.valid[1] was in published and middle: kept for published).
    remaining = store_images(layout, settings)
    assert listed_files(published) | listed_files(newest) <= remaining
    assert any(name.startswith(report.valid[1]) for name in remaining)
    assert result.bytes_freed > 0 and result.removed_files > 0
    # Sources are never touched.
    assert len(list((layout.data / "images").iterdir())) == 7 - 2 + 2

    # Once the published version is no longer protected, its leftovers go too.
    with Catalogue.of(layout) as catalogue:
        again = apply_retention(catalogue, layout, 1, set())
    assert again.removed_versions == [published.name]
    assert not any(name.startswith(report.valid[1]) for name in store_images(layout, settings))
    with Catalogue.of(layout) as catalogue:
        current = {image for image, _ in catalogue.output_files(settings.key)}
    assert store_images(layout, settings) == current  # exactly what the catalogue holds now
    assert listed_files(newest) <= current


def test_the_job_keeps_the_champion_and_every_published_release(harness, layout):
    settings = AugmentSettings(variants=1)
    report, published, champion_version, removable = three_versions(harness, layout, settings)
    delete(layout, report.valid[2])
    newest = harness.build(settings)[2]
    champion = champion_record(layout)
    champion.parent.mkdir(parents=True, exist_ok=True)
    champion.write_text(
        json.dumps(
            {
                "weights": str(layout.models / "azaion.pt"),
                "weights_sha256": "0" * 64,
                "model_version": "m1",
                "dataset_version": version_label(champion_version.name),
                "promoted_at": "2026-01-01T00:00:00+00:00",
            }
        )
    )
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "published_model", metadata={"dataset_version": version_label(published.name)}
            )
        )
        result = dataset_retention_job.execute_in_process(
            instance=instance,
            resources={
                "storage": AzaionStorage(root_dir=str(layout.root)),
                "pipeline_store": PipelineStore(),  # off: the object store has its own test
            },
            run_config={"ops": {"remove_unreferenced_dataset_files": {"config": {"keep_last": 1}}}},
        )
    assert result.success
    [output] = [e for e in result.all_node_events if e.is_successful_output]
    metadata = output.step_output_data.metadata
    assert metadata["removed_versions"].data == [removable.name]
    assert metadata["bytes_freed"].value > 0
    assert not removable.directory.exists()
    assert all(v.data_yaml.exists() for v in (published, champion_version, newest))


def test_snapshots_keep_the_newest_and_those_kept_versions_need_and_restore(harness, layout):
    settings = AugmentSettings(variants=0)
    report = harness.add_samples(8, seed=3)  # 7 in data/
    first = harness.build(settings)[2]
    with Catalogue.of(layout) as catalogue:
        first_snapshot = apply_retention(catalogue, layout, 5, set(), keep_snapshots=1).snapshot
    delete(layout, report.valid[0])
    harness.build(settings)[2]
    with Catalogue.of(layout) as catalogue:
        second = apply_retention(catalogue, layout, 5, set(), keep_snapshots=1)
    assert second.removed_snapshots == []  # each is the snapshot of a kept version
    harness.add_samples(2, seed=4)
    newest = harness.build(settings)[2]

    size = second.snapshot.stat().st_size
    with Catalogue.of(layout) as catalogue:
        third = apply_retention(catalogue, layout, 1, {version_label(first.name)}, keep_snapshots=1)
    # Kept: the newest, and first's (the one taken after first was made); second's version
    # went, so its snapshot went with it.
    assert snapshots(layout) == [third.snapshot, first_snapshot]
    assert third.removed_snapshots == [second.snapshot.name]
    assert third.bytes_freed >= size

    # The first snapshot is the catalogue as it was: the deleted annotation, first only.
    restore_catalogue(first_snapshot, catalogue_path(layout))
    with Catalogue.of(layout) as catalogue:
        assert catalogue.get(report.valid[0]) is not None
        assert [v["name"] for v in catalogue.versions()] == [first.name]
    again = harness.build(settings)[2]  # a run on the restored catalogue catches up
    assert again.id == newest.id and again.images == newest.images
