"""The code location exposes the dataset stage: assets, groups, checks and their blocking flags."""

from __future__ import annotations

import argparse

import dagster as dg

from azaion_pipeline.cli import build_parser, main


def test_definitions_hold_the_dataset_assets_and_checks():
    from azaion_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"raw_annotations", "augmented_dataset", "training_dataset"} <= keys
    for name in ("raw_annotations", "augmented_dataset", "training_dataset"):
        assert graph.get(dg.AssetKey(name)).group_name == "dataset"
    assert graph.get(dg.AssetKey("augmented_dataset")).parent_keys == {
        dg.AssetKey("raw_annotations")
    }
    assert graph.get(dg.AssetKey("training_dataset")).parent_keys == {
        dg.AssetKey("augmented_dataset")
    }

    checks = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    assert checks["no_near_twins_across_splits"].blocking
    assert checks["every_split_non_empty"].blocking
    assert not checks["labels_in_range"].blocking
    assert all(
        checks[name].asset_key == dg.AssetKey("training_dataset")
        for name in ("no_near_twins_across_splits", "every_split_non_empty", "labels_in_range")
    )
    assert "dataset_retention_schedule" in {s.name for s in defs.schedules}
    assert defs.get_job_def("dataset_retention_job") is not None


def test_augmentation_defaults_live_in_the_lib_settings():
    """The launchpad shows AugmentSettings' own defaults: no second copy in defs can drift."""
    from azaion_pipeline.definitions import defs
    from azaion_pipeline.lib.dataset.augment import AugmentSettings

    node = defs.get_job_def("ingest_job").graph.node_named("augmented_dataset")
    launchpad_default = node.definition.config_schema.default_value
    assert launchpad_default == {**AugmentSettings().model_dump(), "workers": 0}


def test_sample_data_command_writes_the_azaion_layout(tmp_path, capsys):
    assert main(["sample-data", "--root", str(tmp_path), "--images", "10", "--with-defects"]) == 0
    assert "wrote 9 annotations" in capsys.readouterr().out
    images = {p.stem for p in (tmp_path / "data" / "images").iterdir()}
    labels = {p.stem for p in (tmp_path / "data" / "labels").iterdir()}
    assert len(list((tmp_path / "data-seed" / "images").iterdir())) == 1
    assert images ^ labels  # the image_missing / label_missing defects
    assert any(
        (tmp_path / "data" / "labels" / f"{n}.txt").read_text() == "" for n in images & labels
    )


def test_demo_command_is_registered():
    args = build_parser().parse_args(["demo"])
    assert (
        isinstance(args, argparse.Namespace)
        and args.handler.__module__ == "azaion_pipeline.cli.demo"
    )
    assert args.config.name == "demo.yaml" and args.config.exists()
