"""training_dataset: stable hash split by source, no leakage, hard links, a data.yaml YOLO accepts."""

from __future__ import annotations

import os
import shutil
import uuid
from collections import Counter
from pathlib import Path

import pytest
import yaml

from azaion_pipeline.lib.dataset.split import (
    SplitShares,
    assign_splits,
    sources_in_splits,
    split_of,
)
from azaion_pipeline.lib.layout import SPLITS
from azaion_pipeline.lib.manifest import read_manifest


def names(count: int, seed: int) -> list[str]:
    import random

    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def test_split_is_stable_as_data_grows_and_keeps_its_shares():
    shares = SplitShares()
    first = {name: split_of(name, shares) for name in names(3000, seed=1)}
    grown = {name: split_of(name, shares) for name in [*names(2000, seed=2), *first]}
    assert all(grown[name] == split for name, split in first.items())
    counts = Counter(grown.values())
    assert counts["train"] / 5000 == pytest.approx(0.70, abs=0.03)
    assert counts["valid"] / 5000 == pytest.approx(0.20, abs=0.03)
    assert counts["test"] / 5000 == pytest.approx(0.10, abs=0.03)


def test_variants_follow_their_source_and_eval_splits_hold_originals_only():
    entries = [
        {"image": f"{name}_{v}.jpg", "label": f"{name}_{v}.txt", "source": name, "variant": v}
        for name in names(300, seed=3)
        for v in range(4)
    ]
    by_split = assign_splits(entries, SplitShares())
    split_of_source = {}
    for split, rows in by_split.items():
        for row in rows:
            assert split_of_source.setdefault(row["source"], split) == split
            if split != "train":
                assert row["variant"] == 0
    train_sources = {r["source"] for r in by_split["train"]}
    assert len(by_split["train"]) == 4 * len(train_sources)


@pytest.fixture(scope="module")
def shared(tmp_path_factory, make_harness):
    """One real build shared by the read-only tests below (building takes seconds)."""
    harness = make_harness(tmp_path_factory.mktemp("dataset") / "azaion")
    harness.add_samples(30, seed=10)
    result = harness.materialize(harness.assets, harness.run_config(variants=2), harness.checks)
    return harness, result, harness.metadata(result, "training_dataset")


def test_dataset_is_hard_linked_checked_and_loads_in_ultralytics(shared):
    from ultralytics.data.utils import check_det_dataset

    harness, result, metadata = shared
    layout = harness.layout
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {
        "no_source_in_two_splits",
        "every_split_non_empty",
        "labels_in_range",
    }
    assert all(e.passed for e in evaluations.values())

    dataset_dir = Path(metadata["dataset_dir"])
    assert dataset_dir.name == f"azaion-{metadata['dataset_version']}"
    assert all(metadata[f"{split}_images"] > 0 for split in SPLITS)
    processed = {p.name: p for p in layout.processed.rglob("*") if p.is_file()}
    for split in SPLITS:
        files = list((dataset_dir / split / "images").iterdir())
        assert len(files) == metadata[f"{split}_images"]
        for image in files:  # same inode as the augmented file: no bytes copied
            assert os.path.samefile(image, processed[image.name])
        if split != "train":
            assert not any("_" in p.stem for p in files)  # originals only
    assert metadata["copied_files"] == 0
    assert "data:image/png;base64," in metadata["preview"]

    data = yaml.safe_load(Path(metadata["data_yaml"]).read_text())
    assert data["nc"] == 80 and data["names"][20] == "ArmorVehicle(Wint)"
    assert data["names"][17] == "Class-17"
    checked = check_det_dataset(metadata["data_yaml"], autodownload=False)
    assert checked["nc"] == 80
    assert Path(checked["val"]) == dataset_dir / "valid" / "images"


def test_adding_data_keeps_every_source_in_its_split(harness):
    harness.add_samples(30, seed=10)
    config = harness.run_config(variants=2)
    before = harness.metadata(harness.materialize(harness.assets, config), "training_dataset")
    old = read_manifest(before["augmented_manifest"])["entries"]
    old_splits = sources_in_splits(
        Path(before["dataset_dir"]), {Path(e["image"]).name: e["source"] for e in old}
    )
    harness.add_samples(10, seed=11)
    after = harness.metadata(harness.materialize(harness.assets, config), "training_dataset")
    assert after["dataset_version"] != before["dataset_version"]
    entries = read_manifest(after["augmented_manifest"])["entries"]
    new_splits = sources_in_splits(
        Path(after["dataset_dir"]), {Path(e["image"]).name: e["source"] for e in entries}
    )
    assert all(new_splits[source] == splits for source, splits in old_splits.items())
    assert len(new_splits) > len(old_splits)
    # The earlier dataset is still intact for whoever trained on it.
    assert Path(before["data_yaml"]).exists()


def test_same_content_reuses_the_dataset(shared):
    harness, _, before = shared
    again = harness.metadata(
        harness.materialize(harness.assets, harness.run_config(variants=2)), "training_dataset"
    )
    assert again["dataset_version"] == before["dataset_version"]
    assert again["reused_existing"] is True


def test_leak_check_sees_a_source_in_two_splits(shared, tmp_path):
    _, _, metadata = shared
    dataset_dir = tmp_path / "tampered"
    shutil.copytree(metadata["dataset_dir"], dataset_dir, copy_function=os.link)
    entries = read_manifest(metadata["augmented_manifest"])["entries"]
    image_to_source = {Path(e["image"]).name: e["source"] for e in entries}
    variant = next(p for p in (dataset_dir / "train" / "images").iterdir() if "_" in p.stem)
    os.link(variant, dataset_dir / "valid" / "images" / variant.name)
    leaks = {
        s
        for s, splits in sources_in_splits(dataset_dir, image_to_source).items()
        if len(splits) > 1
    }
    assert leaks == {image_to_source[variant.name]}
