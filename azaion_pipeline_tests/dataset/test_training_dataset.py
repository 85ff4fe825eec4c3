"""training_dataset: O(1)-entry versions over the store, right lists, caches ultralytics trusts."""

from __future__ import annotations

import os
import shutil
import uuid
from collections import Counter
from pathlib import Path

import pytest
import yaml

from azaion_pipeline.lib.dataset.augment import AugmentSettings
from azaion_pipeline.lib.dataset.catalogue import Catalogue
from azaion_pipeline.lib.dataset.labels_cache import prepare_labels_caches
from azaion_pipeline.lib.dataset.split import SplitShares, split_of
from azaion_pipeline.lib.dataset.versions import read_list
from azaion_pipeline.lib.evaluation.slices import SIZE_BUCKETS_FILE, ensure_size_buckets
from azaion_pipeline.lib.layout import SPLITS


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


def sources_by_split(version_dir: Path) -> dict[str, set[str]]:
    """Source name -> splits its listed images are in (file: {name}[_{v}].{hash}.ext)."""
    found: dict[str, set[str]] = {}
    for split in SPLITS:
        for image in read_list(version_dir, split):
            stem = image.split(".")[0]
            source = stem.rpartition("_")[0] or stem
            found.setdefault(source, set()).add(split)
    return found


def version_now(harness, variants: int = 2):
    """The new version and the ingest report."""
    report, _, built = harness.build(AugmentSettings(variants=variants))
    return built, report


@pytest.fixture(scope="module")
def shared(tmp_path_factory, make_harness):
    """One real build through Dagster, shared by the read-only tests below."""
    harness = make_harness(tmp_path_factory.mktemp("dataset") / "azaion")
    harness.add_samples(30, seed=10)
    result = harness.materialize(harness.assets, harness.run_config(variants=2), harness.checks)
    return harness, result, harness.metadata(result, "training_dataset")


def test_version_is_a_handful_of_entries_checked_and_loads_in_ultralytics(shared):
    from ultralytics.data.utils import check_det_dataset

    _, result, metadata = shared
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {
        "no_near_twins_across_splits",
        "every_split_non_empty",
        "labels_in_range",
    }
    assert all(e.passed for e in evaluations.values())

    version_dir = Path(metadata["dataset_dir"])
    assert version_dir.name == f"azaion-{metadata['dataset_version']}"
    entries = [p for p in version_dir.rglob("*")]
    assert len(entries) <= 20  # whatever the dataset's size: lists, links, data.yaml
    for split in SPLITS:
        listed = read_list(version_dir, split)
        assert len(listed) == metadata[f"{split}_images"] > 0
        for image in listed:  # through the split's link into the store: no copies
            assert (version_dir / split / "images" / image).is_file()
            label = image.rsplit(".", 1)[0] + ".txt"
            assert (version_dir / split / "labels" / label).is_file()
    # Each source in one split; valid and test hold originals only.
    assert all(len(splits) == 1 for splits in sources_by_split(version_dir).values())
    for split in ("valid", "test"):
        assert not any("_" in image.split(".")[0] for image in read_list(version_dir, split))
    assert "data:image/png;base64," in metadata["preview"]

    data = yaml.safe_load(Path(metadata["data_yaml"]).read_text())
    assert data["nc"] == 80 and data["names"][20] == "ArmorVehicle(Wint)"
    assert data["names"][17] == "Class-17"
    checked = check_det_dataset(metadata["data_yaml"], autodownload=False)
    assert Path(checked["val"]) == version_dir / "valid.txt"

    # The evaluator's size buckets, recorded from the catalogue's label texts: the train
    # list's boxes only (the store behind the links holds every split's labels).
    recorded = version_dir / SIZE_BUCKETS_FILE
    assert recorded.is_file()
    buckets = ensure_size_buckets(Path(metadata["data_yaml"]))
    train_labels = [
        version_dir / "train" / "labels" / (image.rsplit(".", 1)[0] + ".txt")
        for image in read_list(version_dir, "train")
    ]
    assert buckets.boxes == sum(len(p.read_text().splitlines()) for p in train_labels)
    recorded.unlink()  # a version without them gets the same edges from its label files
    assert ensure_size_buckets(Path(metadata["data_yaml"])) == buckets and recorded.is_file()


def test_same_content_reuses_the_version(shared):
    harness, _, before = shared
    again = harness.metadata(
        harness.materialize(harness.assets, harness.run_config(variants=2)), "training_dataset"
    )
    assert again["dataset_version"] == before["dataset_version"]
    assert again["reused_existing"] is True


def test_plus_one_and_minus_one_give_the_right_lists(harness, layout):
    harness.add_samples(12, seed=20)
    first, _ = version_now(harness)
    [added] = harness.add_samples(1, seed=21).valid
    plus, report = version_now(harness)
    assert report.accepted == [added] and plus.id != first.id
    lists = {s: set(read_list(plus.directory, s)) for s in SPLITS}
    old = {s: set(read_list(first.directory, s)) for s in SPLITS}
    with Catalogue.of(layout) as catalogue:
        split = catalogue.split_of(added)
    new_files = {s: lists[s] - old[s] for s in SPLITS}
    assert all(p.startswith(added) for p in new_files[split])
    assert len(new_files[split]) == (3 if split == "train" else 1)
    assert all(not new_files[s] for s in SPLITS if s != split)
    assert all(old[s] <= lists[s] for s in SPLITS)

    for sub, suffix in (("images", ".jpg"), ("labels", ".txt")):
        (layout.data / sub / f"{added}{suffix}").unlink()
    minus, report = version_now(harness)
    assert report.removed == [added]
    assert {s: set(read_list(minus.directory, s)) for s in SPLITS} == old
    # Back to the first content, so back to the first version (reused, not rebuilt).
    assert minus.id == first.id and minus.reused
    assert Path(plus.data_yaml).exists()  # the +1 version stays for whoever trained on it


def labels_of(data_yaml: Path, split_key: str) -> dict[str, list[list[float]]]:
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    spec = check_det_dataset(str(data_yaml), autodownload=False)
    dataset = YOLODataset(img_path=spec[split_key], data=spec, augment=False)
    return {
        Path(label["im_file"]).name.split(".")[0]: [
            [int(c), *map(float, box)]
            for c, box in zip(label["cls"].ravel(), label["bboxes"], strict=True)
        ]
        for label in dataset.labels
    }


def test_a_label_edited_to_the_same_size_trains_on_the_new_content(harness, layout, monkeypatch):
    from ultralytics.data.dataset import YOLODataset

    report = harness.add_samples(10, seed=30)
    catalogue, _ = harness.ingest()
    with catalogue:
        name = next(n for n in report.valid if catalogue.split_of(n) == "train")
    label = layout.data / "labels" / f"{name}.txt"
    label.write_text("3 0.500000 0.500000 0.200000 0.200000\n")
    before, _ = version_now(harness, variants=1)
    assert prepare_labels_caches(before.data_yaml)

    label.write_text("5 0.500000 0.500000 0.200000 0.200000\n")  # same size, new class
    after, _ = version_now(harness, variants=1)
    assert after.id != before.id
    assert prepare_labels_caches(after.data_yaml)

    def no_scan(self, *args, **kwargs):
        raise AssertionError("ultralytics scanned: the written cache was not taken")

    monkeypatch.setattr(YOLODataset, "cache_labels", no_scan)
    [[class_id, *box]] = labels_of(after.data_yaml, "train")[name]
    assert class_id == 5 and box == pytest.approx([0.5, 0.5, 0.2, 0.2])
    # The earlier version still reads the earlier label: nothing rewrote its files.
    [[class_id, *box]] = labels_of(before.data_yaml, "train")[name]
    assert class_id == 3 and box == pytest.approx([0.5, 0.5, 0.2, 0.2])


def test_adding_20_percent_moves_no_annotation(harness, layout):
    harness.add_samples(40, seed=40)
    catalogue, _ = harness.ingest()
    with catalogue:
        before = {a.name: catalogue.split_of(a.name) for a in catalogue.iter_annotations()}
    harness.add_samples(9, seed=41)
    catalogue, report = harness.ingest()
    with catalogue:
        after = {a.name: catalogue.split_of(a.name) for a in catalogue.iter_annotations()}
    assert len(report.accepted) >= 8
    assert all(after[name] == split for name, split in before.items())


def test_leftover_of_a_killed_build_is_replaced(harness, layout):
    harness.add_samples(6, seed=50)
    built, _ = version_now(harness)
    stray = built.directory.with_name(f".{built.name}.{os.getpid()}.partial")
    shutil.copytree(built.directory, stray, symlinks=True)
    shutil.rmtree(built.directory)
    rebuilt, _ = version_now(harness)
    assert rebuilt.id == built.id and not rebuilt.reused
    assert not stray.exists() and rebuilt.data_yaml.exists()
