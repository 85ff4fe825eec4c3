"""Dataset versions pushed content-addressed to a real S3 server and synced into node caches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from azaion_pipeline.lib.dataset.labels_cache import prepare_labels_caches
from azaion_pipeline.lib.dataset.versions import YAML_KEYS, DatasetVersion, read_list
from azaion_pipeline.lib.dataset_store import (
    MANIFEST,
    PACK_BYTES,
    PUSH_GRACE,
    DatasetStore,
    Listed,
    ManifestEntry,
    NodeCache,
    Pack,
    StoreError,
    VersionDelta,
    VersionManifest,
    build_manifest,
    label_path_of,
    plan_packs,
    plan_runs,
    version_manifest,
)
from azaion_pipeline.lib.hashing import sha256_file
from azaion_pipeline.lib.layout import IMAGES, LABELS, SPLITS
from azaion_pipeline.lib.portable import Localiser, share


def push(store: DatasetStore, dataset: DatasetVersion, cache: NodeCache | None = None):
    manifest, files = version_manifest(dataset)
    return manifest, store.push_version(manifest, files, cache)


def host_files(dataset: DatasetVersion) -> dict[str, tuple[Path, Path]]:
    """Image file name -> (image, label) on the host, from the version's own lists."""
    return {
        name: (
            dataset.directory / split / IMAGES / name,
            dataset.directory / split / LABELS / f"{Path(name).stem}.txt",
        )
        for split in SPLITS
        for name in read_list(dataset.directory, split)
    }


def object_hashes(dataset: DatasetVersion) -> set[str]:
    return {sha256_file(p) for pair in host_files(dataset).values() for p in pair}


def node_labels(data_yaml: Path, split_key: str, monkeypatch) -> dict[str, list[list[float]]]:
    """What ultralytics' loader gives for one split, by node image file name, after the label
    caches were written as training writes them; it must take them (a scan fails the test)."""
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    prepare_labels_caches(data_yaml)

    def no_scan(self, *args, **kwargs):
        raise AssertionError("ultralytics scanned: the written cache was not taken")

    monkeypatch.setattr(YOLODataset, "cache_labels", no_scan)
    spec = check_det_dataset(str(data_yaml), autodownload=False)
    dataset = YOLODataset(img_path=spec[split_key], data=spec, augment=False)
    return {
        Path(label["im_file"]).name: [
            [int(c), *map(float, box)]
            for c, box in zip(label["cls"].ravel(), label["bboxes"], strict=True)
        ]
        for label in dataset.labels
    }


def test_a_version_syncs_into_an_empty_cache_and_again_costs_nothing(
    tmp_path, host, dataset_store, monkeypatch
):
    host.add_samples(12, seed=1)
    dataset = host.version()
    manifest, pushed = push(dataset_store, dataset)
    on_host = host_files(dataset)
    assert pushed.objects == pushed.transferred == len(object_hashes(dataset))
    assert len(manifest.entries) == len(on_host) > 12  # originals plus a variant each in train

    cache = NodeCache(tmp_path / "node")
    node_yaml, pulled = dataset_store.pull_version(dataset.version, cache)
    assert (pulled.objects, pulled.transferred) == (pushed.objects, pushed.objects)
    assert pulled.bytes == sum(p.stat().st_size for pair in on_host.values() for p in pair)
    # Every split lists as many images as on the host, each with the host's image and label bytes.
    by_file = {entry.file: entry for entry in manifest.entries}
    for split in SPLITS:
        listed = read_list(node_yaml.parent, split)
        assert len(listed) == len(read_list(dataset.directory, split))
        for file in listed:
            entry = by_file[file]
            image = node_yaml.parent / split / IMAGES / file
            label = node_yaml.parent / split / LABELS / f"{Path(file).stem}.txt"
            assert entry.split == split
            assert (sha256_file(image), sha256_file(label)) == tuple(
                sha256_file(p) for p in on_host[entry.name]
            )
    facts = yaml.safe_load(node_yaml.read_text())
    assert facts["nc"] == 80 and facts["names"] == host.catalog.model_names()
    # The node's copy names no catalogue: its label caches come from the synced manifest.
    assert "azaion_catalogue" not in facts and facts["azaion_manifest"] == "manifest.json"
    assert not list(node_yaml.parent.glob("*/labels.cache"))  # a sync reads no label
    trained_on = node_labels(node_yaml, "train", monkeypatch)
    for file, boxes in trained_on.items():
        label_text = on_host[by_file[file].name][1].read_text()
        expected = [[float(v) for v in line.split()] for line in label_text.splitlines()]
        assert len(boxes) == len(expected)
        for got, want in zip(sorted(boxes), sorted(expected), strict=True):
            assert got == pytest.approx(want, abs=1e-6)

    _, again = dataset_store.pull_version(dataset.version, cache)
    assert again.transferred == 0 and again.bytes == 0


def test_a_grown_version_transfers_only_the_new_objects(tmp_path, host, dataset_store):
    host.add_samples(12, seed=2)
    first_version = host.version()
    _, first = push(dataset_store, first_version)
    cache = NodeCache(tmp_path / "node")
    dataset_store.pull_version(first_version.version, cache)

    host.add_samples(3, seed=3)
    grown_version = host.version()
    assert grown_version.version != first_version.version
    new_objects = object_hashes(grown_version) - object_hashes(first_version)
    assert new_objects
    _, pushed = push(dataset_store, grown_version)
    assert pushed.transferred == len(new_objects)
    # The grown version shares the first one's pack and adds one holding exactly the new objects.
    first_packs = dataset_store.load_manifest(first_version.version).packs
    grown_packs = dataset_store.load_manifest(grown_version.version).packs
    assert grown_packs[: len(first_packs)] == first_packs
    [new_pack] = grown_packs[len(first_packs) :]
    assert set(new_pack.offsets) == new_objects
    _, pulled = dataset_store.pull_version(grown_version.version, cache)
    assert pulled.transferred == len(new_objects)
    assert pulled.requests == 1
    assert pulled.objects == len(object_hashes(grown_version)) == first.objects + len(new_objects)


def test_a_node_holding_the_parent_derives_the_grown_manifest_from_its_delta(
    tmp_path, host, dataset_store
):
    host.add_samples(6, seed=20)
    first_version = host.version()
    push(dataset_store, first_version)
    cache = NodeCache(tmp_path / "node")
    dataset_store.pull_version(first_version.version, cache)
    host.add_samples(2, seed=21)
    grown_version = host.version()
    push(dataset_store, grown_version)
    key = dataset_store.manifest_key(grown_version.version)
    stored = dataset_store.get_bytes(key)
    dataset_store.put_bytes(key, b"not read")  # the delta and the node's parent suffice

    node_yaml, pulled = dataset_store.pull_version(grown_version.version, cache)
    assert (node_yaml.parent / MANIFEST).read_bytes() == stored
    assert pulled.transferred == len(object_hashes(grown_version) - object_hashes(first_version))
    for split in SPLITS:
        assert len(read_list(node_yaml.parent, split)) == len(
            read_list(grown_version.directory, split)
        )


def test_a_node_whose_parent_copy_differs_syncs_from_the_full_manifest(
    tmp_path, host, dataset_store
):
    host.add_samples(6, seed=22)
    first_version = host.version()
    push(dataset_store, first_version)
    cache = NodeCache(tmp_path / "node")
    first_yaml, _ = dataset_store.pull_version(first_version.version, cache)
    copy = first_yaml.parent / MANIFEST
    copy.write_bytes(copy.read_bytes().replace(b"train", b"valid", 1))  # not what was pushed
    host.add_samples(2, seed=23)
    grown_version = host.version()
    push(dataset_store, grown_version)

    node_yaml, pulled = dataset_store.pull_version(grown_version.version, cache)
    stored = dataset_store.get_bytes(dataset_store.manifest_key(grown_version.version))
    assert (node_yaml.parent / MANIFEST).read_bytes() == stored
    assert pulled.objects == len(object_hashes(grown_version))


def list_lines(manifest: VersionManifest) -> dict[str, list[str]]:
    lines = {split: [] for split in SPLITS}
    for entry in manifest.entries:
        lines[entry.split].append(f"./{entry.split}/images/{entry.file}\n")
    return lines


def test_a_delta_gives_the_pushed_bytes_and_lists_from_its_parent_and_nothing_from_another(
    tmp_path,
):
    names = {0: "a", 1: "b", 2: "c"}
    parent, _ = synthetic_version(tmp_path, "parent", 0, 5, names)
    child, _ = synthetic_version(tmp_path, "child", 2, 5, names)  # drops 0 and 1, adds 5 and 6
    parent_text = parent.model_dump_json().encode()
    child_text = child.model_dump_json().encode()
    delta = VersionDelta.between(parent, parent_text, child_text)
    assert delta.removed == (0, 1) and [i for i, _ in delta.added] == [3, 4]
    assert delta.objects == len(child.objects())

    lines = list_lines(parent)
    assert delta.apply(parent_text, lines) == (child_text, list_lines(child))
    reordered = parent.model_copy(update={"entries": parent.entries[::-1]})
    assert delta.apply(reordered.model_dump_json().encode(), lines) is None
    assert delta.apply(parent_text, {"train": lines["train"][:-1]}) is None  # lists too short
    assert delta.apply(parent_text, {"train": [*lines["train"], "./train/images/x.jpg\n"]}) is None


def test_the_building_host_adopts_its_files_and_downloads_nothing(tmp_path, host, dataset_store):
    host.add_samples(6, seed=4)
    dataset = host.version()
    cache = NodeCache(tmp_path / "node")
    push(dataset_store, dataset, cache)
    _, pulled = dataset_store.pull_version(dataset.version, cache)
    assert pulled.transferred == 0


def test_an_object_with_wrong_bytes_is_refused_and_never_cached(tmp_path, host, dataset_store):
    host.add_samples(3, seed=5)
    dataset = host.version()
    push(dataset_store, dataset)
    [pack] = dataset_store.load_manifest(dataset.version).packs
    data = bytearray(dataset_store.get_bytes(dataset_store.pack_key(pack.sha256)))
    victim, offset = min(pack.offsets.items(), key=lambda item: item[1])
    data[offset] ^= 0xFF  # one flipped byte, same length: only the hash can tell
    dataset_store.put_bytes(dataset_store.pack_key(pack.sha256), bytes(data))
    cache = NodeCache(tmp_path / "node")
    with pytest.raises(StoreError, match=victim):
        dataset_store.pull_version(dataset.version, cache)
    assert not cache.has(victim)
    assert not list(cache.object_path(victim).parent.glob(".*.tmp"))


def test_a_truncated_pack_is_refused(tmp_path, host, dataset_store):
    host.add_samples(3, seed=9)
    dataset = host.version()
    push(dataset_store, dataset)
    [pack] = dataset_store.load_manifest(dataset.version).packs
    key = dataset_store.pack_key(pack.sha256)
    dataset_store.put_bytes(key, dataset_store.get_bytes(key)[: pack.size // 2])
    with pytest.raises(StoreError, match="shorter than its manifest"):
        dataset_store.pull_version(dataset.version, NodeCache(tmp_path / "node"))


def test_a_manifest_cannot_point_the_node_outside_its_cache(host):
    host.add_samples(3, seed=6)
    manifest, _ = version_manifest(host.version())
    data = manifest.model_dump(mode="json")
    assert VersionManifest.model_validate(data) == manifest  # the real one loads
    with pytest.raises(ValueError, match="version"):
        VersionManifest.model_validate(data | {"version": "../../elsewhere"})
    data["entries"][0]["split"] = "../../elsewhere"
    with pytest.raises(ValueError, match="split"):
        VersionManifest.model_validate(data)


def test_weights_travel_by_hash_under_their_own_name(tmp_path, dataset_store):
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"not really a model, but bytes all the same")
    sha256 = dataset_store.put_file(weights)
    fetched = dataset_store.fetch_file(sha256, "best.pt", NodeCache(tmp_path / "node"))
    assert fetched.name == "best.pt" and fetched.read_bytes() == weights.read_bytes()


def test_a_label_edited_to_the_same_size_trains_on_the_new_labels(
    tmp_path, host, dataset_store, monkeypatch
):
    """ultralytics keys labels.cache on paths + total size: the node writes each version's
    cache from its manifest, so an edit that keeps the size still reaches training."""
    name = host.add_samples(10, seed=7)[0]
    label = host.layout.data / LABELS / f"{name}.txt"
    cache = NodeCache(tmp_path / "node")

    def synced(text: str) -> tuple[Path, VersionManifest]:
        label.write_text(text)
        dataset = host.version()
        manifest, _ = push(dataset_store, dataset)
        node_yaml, _ = dataset_store.pull_version(dataset.version, cache)
        return node_yaml, manifest

    def boxes_of(node_yaml: Path, manifest: VersionManifest) -> list[list[float]]:
        [original] = [e for e in manifest.entries if e.name.startswith(f"{name}.")]
        split_key = YAML_KEYS[original.split]
        return node_labels(node_yaml, split_key, monkeypatch)[original.file]

    before = synced("3 0.500000 0.500000 0.200000 0.200000\n")
    after = synced("5 0.500000 0.500000 0.200000 0.200000\n")  # same size, new class
    assert before[0] != after[0]
    [[class_id, *box]] = boxes_of(*after)
    assert class_id == 5 and box == pytest.approx([0.5, 0.5, 0.2, 0.2])
    # The earlier version on the node still reads the earlier label.
    [[class_id, *box]] = boxes_of(*before)
    assert class_id == 3 and box == pytest.approx([0.5, 0.5, 0.2, 0.2])


def test_a_shared_version_is_localised_on_a_worker_without_the_root(tmp_path, host, dataset_store):
    host.add_samples(6, seed=8)
    dataset = host.version()
    share(dataset, dataset_store, NodeCache(tmp_path / "host-cache"))
    assert dataset_store.has(dataset_store.manifest_key(dataset.version))

    on_host = Localiser(dataset_store, NodeCache(tmp_path / "host-cache"), host.layout.root)
    assert on_host(dataset) == dataset  # its own files: nothing synced
    worker_cache = NodeCache(tmp_path / "gpu" / "node-cache")
    local = Localiser(dataset_store, worker_cache, tmp_path / "gpu")(dataset)
    assert local.directory == local.data_yaml.parent
    assert local.data_yaml.is_relative_to(worker_cache.root)
    written = {p.parent.name for p in prepare_labels_caches(local.data_yaml)}
    assert written == {split for split, images in dataset.images.items() if images}


MIB = 2**20


def planned_manifest(packs: list[dict[str, int]], sizes: dict[str, int]) -> VersionManifest:
    """A manifest whose objects ``sizes`` sit in ``packs`` (sha256 -> offset each)."""
    sha = {name: f"{ord(name):064x}" for name in sizes}
    entries = [
        ManifestEntry(
            split="train",
            name=f"{image}.jpg",
            image_sha256=sha[image],
            image_size=sizes[image],
            label_sha256=sha[label],
            label_size=sizes[label],
            width=1,
            height=1,
        )
        for image, label in zip(sorted(sizes)[::2], sorted(sizes)[1::2], strict=True)
    ]
    return VersionManifest(
        version="v",
        names={0: "a"},
        entries=tuple(entries),
        packs=tuple(
            Pack(sha256=f"{n:064x}", size=0, offsets={sha[k]: o for k, o in offsets.items()})
            for n, offsets in enumerate(packs)
        ),
    )


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("abcd", [(0, 0, 4 * MIB - 2)]),  # adjacent, under RANGE_BYTES: one GET
        ("ad", [(0, 0, 4 * MIB - 2)]),  # b and c are held but only 2 bytes: read across them
        ("bc", [(0, MIB, MIB + 2)]),
        ("", []),
    ],
)
def test_missing_objects_are_fetched_in_few_ranged_gets(missing, expected):
    sizes = {"a": MIB, "b": 1, "c": 1, "d": 3 * MIB - 4}
    offsets = {"a": 0, "b": MIB, "c": MIB + 1, "d": MIB + 2}
    manifest = planned_manifest([offsets], sizes)
    shas = {f"{ord(k):064x}" for k in missing}
    runs = plan_runs(manifest, shas)
    assert [(0, r.start, r.end) for r in runs] == expected
    assert {m[0] for r in runs for m in r.members} == shas


def test_a_gap_or_a_long_run_starts_a_new_get_and_each_object_comes_once():
    sizes = {"a": MIB, "b": MIB, "c": 4 * MIB - 1, "d": 2}
    offsets = {"a": 0, "b": MIB, "c": 2 * MIB, "d": 6 * MIB - 1}
    # d is in both packs: it comes from the first only
    manifest = planned_manifest([offsets, {"d": 0}], sizes)
    runs = plan_runs(manifest, {f"{ord(k):064x}" for k in "acd"})
    # a, then c (b between them is a 1 MiB gap, over GAP_BYTES), c + d exceed RANGE_BYTES
    assert [(r.start, r.end) for r in runs] == [
        (0, MIB),
        (2 * MIB, 6 * MIB - 1),
        (6 * MIB - 1, 6 * MIB + 1),
    ]
    assert {r.pack for r in runs} == {f"{0:064x}"}


def test_an_object_in_no_pack_is_an_error():
    manifest = planned_manifest([{"a": 0}], {"a": 1, "b": 1})
    with pytest.raises(StoreError, match="1 objects are in none of its packs"):
        plan_runs(manifest, {f"{ord('b'):064x}"})


def test_packs_stay_under_the_limit_and_a_large_object_goes_alone():
    sizes = {"1" * 64: PACK_BYTES - 10, "2" * 64: 20, "3" * 64: PACK_BYTES + 5, "4" * 64: 5}
    assert plan_packs(sizes) == [["1" * 64], ["2" * 64], ["3" * 64], ["4" * 64]]
    assert plan_packs({"1" * 64: 5, "2" * 64: 5}) == [["1" * 64, "2" * 64]]
    assert plan_packs({}) == []


def synthetic_version(folder: Path, version: str, first: int, count: int, names):
    """``count`` image/label pairs of their own under ``folder``: a version no other shares."""
    listed = []
    for index in range(first, first + count):
        image = folder / IMAGES / f"{index:04d}.jpg"
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(f"image {index} ".encode() * 50)
        label = label_path_of(image)
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(f"{index % 3} 0.{index:04d} 0.5 0.1 0.1\n")  # no two alike
        listed.append(Listed("train", image, 64, 48))
    return build_manifest(version, names, listed)


def later() -> datetime:
    """A moment after any push under way now would have finished."""
    return datetime.now(UTC) + PUSH_GRACE + timedelta(minutes=1)


def test_retention_removes_what_no_kept_version_needs_and_frees_its_bytes(tmp_path, dataset_store):
    names = {0: "a", 1: "b", 2: "c"}
    old, old_files = synthetic_version(tmp_path / "old", "old", 0, 4, names)
    dataset_store.push_version(old, old_files)
    published, published_files = synthetic_version(tmp_path / "pub", "published", 10, 4, names)
    dataset_store.push_version(published, published_files)
    grown, grown_files = synthetic_version(tmp_path / "pub", "grown", 10, 6, names)
    dataset_store.push_version(grown, grown_files)  # the newest: reuses published's pack
    [old_pack] = dataset_store.load_manifest("old").packs
    old_manifest_bytes = len(dataset_store.get_bytes(dataset_store.manifest_key("old")))

    freed = dataset_store.remove_unreferenced({"published"}, now=later())
    assert freed.kept_versions == ["grown", "published"]  # the newest stays unasked
    assert freed.removed_versions == ["old"] and freed.removed_packs == 1
    assert freed.bytes_freed == old_pack.size + old_manifest_bytes
    assert not dataset_store.has(dataset_store.pack_key(old_pack.sha256))
    assert not dataset_store.has(dataset_store.manifest_key("old"))
    # Every kept version still syncs in full into an empty cache.
    for version, manifest in (("published", published), ("grown", grown)):
        _, pulled = dataset_store.pull_version(version, NodeCache(tmp_path / f"node-{version}"))
        assert pulled.transferred == len(manifest.objects())

    again = dataset_store.remove_unreferenced({"published"}, now=later())
    assert (again.removed_versions, again.removed_packs, again.bytes_freed) == ([], 0, 0)

    assert dataset_store.has(dataset_store.delta_key("published"))
    dataset_store.remove_unreferenced(set(), now=later())  # only the newest, grown, stays
    assert not dataset_store.has(dataset_store.delta_key("published"))
    assert dataset_store.has(dataset_store.delta_key("grown"))


def test_an_entry_added_back_is_fetched_from_the_earlier_pack_that_holds_it(
    tmp_path, dataset_store
):
    names = {0: "a", 1: "b", 2: "c"}
    first, files = synthetic_version(tmp_path / "src", "first", 0, 4, names)
    dataset_store.push_version(first, files)
    second, files = synthetic_version(tmp_path / "src", "second", 1, 3, names)  # drops 0
    dataset_store.push_version(second, files)
    third, files = synthetic_version(tmp_path / "src", "third", 0, 4, names)  # adds 0 back
    dataset_store.push_version(third, files)
    assert not dataset_store.load_manifest("third").packs[1:]  # 0 is in first's pack alone
    cache = NodeCache(tmp_path / "node")
    dataset_store.pull_version("second", cache)  # this node never held 0

    node_yaml, pulled = dataset_store.pull_version("third", cache)
    assert pulled.transferred == 2 and pulled.objects == len(third.objects())
    stored = dataset_store.get_bytes(dataset_store.manifest_key("third"))
    assert (node_yaml.parent / MANIFEST).read_bytes() == stored
    assert len(read_list(node_yaml.parent, "train")) == 4


def test_retention_spares_a_fresh_pack_of_a_push_under_way(tmp_path, dataset_store):
    """A push uploads packs before its manifest: one cut short (or still running) leaves packs
    no manifest names yet; they go only once they are older than a push can take."""
    names = {0: "a", 1: "b", 2: "c"}
    kept, files = synthetic_version(tmp_path / "kept", "kept", 0, 2, names)
    dataset_store.push_version(kept, files)
    cut, cut_files = synthetic_version(tmp_path / "cut", "cut", 10, 2, names)
    [members] = plan_packs(cut.objects())
    orphan = dataset_store._upload_pack(members, cut_files)  # killed before its manifest

    assert dataset_store.remove_unreferenced({"kept"}).removed_packs == 0
    assert dataset_store.has(dataset_store.pack_key(orphan.sha256))
    freed = dataset_store.remove_unreferenced({"kept"}, now=later())
    assert (freed.removed_packs, freed.bytes_freed) == (1, orphan.size)
    assert not dataset_store.has(dataset_store.pack_key(orphan.sha256))
    _, pulled = dataset_store.pull_version("kept", NodeCache(tmp_path / "node"))
    assert pulled.transferred == len(kept.objects())
