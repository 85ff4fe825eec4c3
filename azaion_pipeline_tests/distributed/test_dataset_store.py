"""Dataset versions pushed content-addressed to a real S3 server and synced into node caches."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from azaion_pipeline.lib.dataset_store import (
    DatasetStore,
    NodeCache,
    StoreError,
    build_manifest,
    version_pairs,
)
from azaion_pipeline.lib.hashing import sha256_file
from azaion_pipeline.lib.layout import SPLITS
from azaion_pipeline_tests.distributed.conftest import sample_pairs, split_folders


def push(store: DatasetStore, data_yaml: Path, version: str, cache: NodeCache | None = None):
    names, pairs = version_pairs(data_yaml)
    manifest, files = build_manifest(version, names, pairs)
    return manifest, store.push_version(manifest, files, cache)


def listed(data_yaml: Path) -> dict[str, list[Path]]:
    facts = yaml.safe_load(data_yaml.read_text())
    base = Path(facts["path"])
    keys = {"train": "train", "valid": "val", "test": "test"}
    return {s: [Path(p) for p in (base / facts[keys[s]]).read_text().split()] for s in SPLITS}


def test_a_version_syncs_into_an_empty_cache_and_again_costs_nothing(
    tmp_path, dataset_store, catalog
):
    pairs = sample_pairs(tmp_path / "root", catalog, 12, seed=1)
    data_yaml = split_folders(tmp_path / "v1", pairs, catalog)
    manifest, pushed = push(dataset_store, data_yaml, "v1")
    assert pushed.objects == len(manifest.objects()) == pushed.transferred
    assert len(manifest.entries) == 12

    cache = NodeCache(tmp_path / "node")
    node_yaml, pulled = dataset_store.pull_version("v1", cache)
    assert (pulled.objects, pulled.transferred) == (pushed.objects, pushed.objects)
    assert pulled.bytes == sum(manifest.objects().values())
    # Each listed image and its ultralytics label path hold the bytes of the original pair.
    originals = {image.name: (sha256_file(image), sha256_file(label)) for image, label in pairs}
    lists = listed(node_yaml)
    assert sum(len(v) for v in lists.values()) == 12
    by_pair = {e.pair: e for e in manifest.entries}
    for split, images in lists.items():
        for image in images:
            entry = by_pair[image.stem]
            assert entry.split == split
            label = image.parent.parent / "labels" / f"{image.stem}.txt"
            assert (sha256_file(image), sha256_file(label)) == originals[entry.name]
    facts = yaml.safe_load(node_yaml.read_text())
    assert facts["nc"] == 80 and facts["names"] == catalog.model_names()

    _, again = dataset_store.pull_version("v1", cache)
    assert again.transferred == 0 and again.bytes == 0


def test_a_grown_version_transfers_only_the_new_objects(tmp_path, dataset_store, catalog):
    pairs = sample_pairs(tmp_path / "root", catalog, 15, seed=2)
    base, added = pairs[:12], pairs[12:]
    _, first = push(dataset_store, split_folders(tmp_path / "v1", base, catalog), "v1")
    cache = NodeCache(tmp_path / "node")
    dataset_store.pull_version("v1", cache)

    grown, pushed = push(dataset_store, split_folders(tmp_path / "v2", pairs, catalog), "v2")
    new_objects = {sha256_file(p) for pair in added for p in pair} - {
        sha256_file(p) for pair in base for p in pair
    }
    assert pushed.transferred == len(new_objects)
    _, pulled = dataset_store.pull_version("v2", cache)
    assert pulled.transferred == len(new_objects)
    assert pulled.objects == len(grown.objects()) == first.objects + len(new_objects)


def test_the_building_host_adopts_its_files_and_downloads_nothing(tmp_path, dataset_store, catalog):
    pairs = sample_pairs(tmp_path / "root", catalog, 6, seed=3)
    cache = NodeCache(tmp_path / "node")
    push(dataset_store, split_folders(tmp_path / "v1", pairs, catalog), "v1", cache)
    _, pulled = dataset_store.pull_version("v1", cache)
    assert pulled.transferred == 0


def test_an_object_with_wrong_bytes_is_refused_and_never_cached(tmp_path, dataset_store, catalog):
    pairs = sample_pairs(tmp_path / "root", catalog, 3, seed=4)
    manifest, _ = push(dataset_store, split_folders(tmp_path / "v1", pairs, catalog), "v1")
    victim = manifest.entries[0].image_sha256
    dataset_store.put_bytes(dataset_store.object_key(victim), b"tampered")
    cache = NodeCache(tmp_path / "node")
    with pytest.raises(StoreError, match=victim):
        dataset_store.pull_version("v1", cache)
    assert not cache.has(victim)
    assert not list(cache.object_path(victim).parent.glob(".*.tmp"))


def test_weights_travel_by_hash_under_their_own_name(tmp_path, dataset_store):
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"not really a model, but bytes all the same")
    sha256 = dataset_store.put_file(weights)
    fetched = dataset_store.fetch_file(sha256, "best.pt", NodeCache(tmp_path / "node"))
    assert fetched.name == "best.pt" and fetched.read_bytes() == weights.read_bytes()


def test_a_label_edited_to_the_same_size_trains_on_the_new_labels(tmp_path, dataset_store, catalog):
    """ultralytics keys labels.cache on paths + total size; pair-named files change both."""
    from ultralytics.data.dataset import YOLODataset

    pairs = sample_pairs(tmp_path / "root", catalog, 6, seed=5)
    cache = NodeCache(tmp_path / "node")

    def train_labels(version: str) -> dict[str, list[int]]:
        node_yaml, _ = dataset_store.pull_version(version, cache)
        dataset = YOLODataset(
            img_path=str(node_yaml.parent / "train.txt"),
            data={"names": catalog.model_names(), "nc": 80, "channels": 3},
            imgsz=64,
            augment=False,
        )
        return {
            Path(lb["im_file"]).stem: sorted(int(c) for c in lb["cls"]) for lb in dataset.labels
        }

    v1_dir = tmp_path / "v1"
    push(dataset_store, split_folders(v1_dir, pairs, catalog), "v1")
    before = train_labels("v1")
    assert (cache.root / "pairs" / "train" / "labels.cache").exists()

    # Edit one train label in place: class 0 <-> 1 on its first box, same byte size.
    label = next(
        p for p in sorted((v1_dir / "train" / "labels").glob("*.txt")) if p.read_text().strip()
    )
    text = label.read_text()
    old_class = text.split()[0]
    new_class = "1" if old_class == "0" else "0" if len(old_class) == 1 else old_class[::-1]
    edited = new_class + text[len(old_class) :]
    assert len(edited) == len(text) and edited != text
    label.write_text(edited)
    push(dataset_store, v1_dir / "data.yaml", "v2")

    after = train_labels("v2")
    expected = sorted(int(line.split()[0]) for line in edited.splitlines() if line.strip())
    changed = set(after) - set(before)
    assert len(changed) == 1
    assert after[changed.pop()] == expected
