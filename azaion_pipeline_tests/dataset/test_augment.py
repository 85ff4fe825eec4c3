"""augmented_dataset: deterministic, incremental, per-settings folders, failures reported."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from azaion_pipeline.defs.dataset.augmented_dataset import augmented_dataset
from azaion_pipeline.defs.dataset.raw_annotations import raw_annotations
from azaion_pipeline.lib.annotations import collect_annotations
from azaion_pipeline.lib.augment import AugmentSettings, augment_dataset, format_boxes
from azaion_pipeline.lib.split import MODEL_CLASS_IDS, parse_label


def snapshot(folder: Path) -> dict[Path, tuple[int, int]]:
    """Each file's inode and modification time: a rewrite changes one of them."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def annotations_of(layout, catalog) -> list[dict]:
    collection = collect_annotations([(layout.data, "data")], catalog.valid_ids(), workers=1)
    return [a.to_json() for a in collection.valid]


def label_texts(output_dir: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((output_dir / "labels").glob("*.txt"))}


def test_same_content_gives_identical_outputs_inline_and_in_processes(harness, layout, tmp_path):
    harness.add_samples(20)
    annotations = annotations_of(layout, harness.catalog)
    settings = AugmentSettings(variants=3)
    # 20 annotations: workers=2 really starts a process pool; workers=1 runs inline.
    pooled = augment_dataset(annotations, tmp_path / "pooled", settings, workers=2)
    inline = augment_dataset(annotations, tmp_path / "inline", settings, workers=1)

    assert not pooled.failures and not inline.failures
    assert len(pooled.entries) == len(annotations) * 4
    assert label_texts(pooled.output_dir) == label_texts(inline.output_dir)
    for name in ("images",):
        for image in (pooled.output_dir / name).iterdir():
            assert image.read_bytes() == (inline.output_dir / name / image.name).read_bytes()
    # Variants really differ from their original (the transforms did something).
    variants = [e for e in pooled.entries if e["variant"] > 0]
    changed = sum(
        Path(e["label"]).read_text() != Path(e["label"]).with_name(f"{e['source']}.txt").read_text()
        for e in variants
    )
    assert changed > len(variants) // 2
    for text in label_texts(pooled.output_dir).values():
        parse_label(text, MODEL_CLASS_IDS)  # every output box stays in range


def test_second_materialisation_touches_only_new_annotations(harness, layout):
    old = len(harness.add_samples(8, seed=1).valid)
    config = harness.run_config(variants=2)
    assets = [raw_annotations, augmented_dataset]
    first = harness.metadata(harness.materialize(assets, config), "augmented_dataset")
    assert first["augmented_now"] == old and first["images"] == old * 3
    before = snapshot(layout.processed)

    added = harness.add_samples(3, seed=2).valid  # new names; fewer than 5: none in data-seed
    assert len(added) == 3
    second = harness.metadata(harness.materialize(assets, config), "augmented_dataset")
    after = snapshot(layout.processed)

    new = set(after) - set(before)
    rewritten = [p for p in before if p in after and after[p] != before[p]]
    output_files = [p for p in new if p.parent.name in ("images", "labels")]
    assert len(output_files) == 3 * 3 * 2  # 3 annotations x (original + 2 variants) x image+label
    assert rewritten == [p for p in rewritten if p.name == "state.json"]
    assert (second["augmented_now"], second["skipped_unchanged"]) == (3, old)
    assert second["images"] == (old + 3) * 3


def test_annotation_that_leaves_leaves_the_output(harness, layout):
    report = harness.add_samples(6, seed=3)
    count = len(report.valid)
    assets = [raw_annotations, augmented_dataset]
    harness.materialize(assets, harness.run_config(variants=2))
    gone = report.valid[0]
    layout.data_deleted.joinpath("images").mkdir(parents=True)
    layout.data_deleted.joinpath("labels").mkdir(parents=True)
    for sub, suffix in (("images", ".jpg"), ("labels", ".txt")):
        shutil.move(layout.data / sub / f"{gone}{suffix}", layout.data_deleted / sub)

    metadata = harness.metadata(
        harness.materialize(assets, harness.run_config(variants=2)), "augmented_dataset"
    )
    assert metadata["removed"] == 1
    assert not list(Path(metadata["output_dir"]).rglob(f"{gone}*"))
    assert metadata["images"] == (count - 1) * 3


def test_changed_settings_write_to_their_own_folder(harness, layout):
    harness.add_samples(4, seed=4)  # fewer than 5: all four in data/
    assets = [raw_annotations, augmented_dataset]
    two = harness.metadata(
        harness.materialize(assets, harness.run_config(variants=2)), "augmented_dataset"
    )
    kept = snapshot(Path(two["output_dir"]))
    none = harness.metadata(
        harness.materialize(assets, harness.run_config(variants=0)), "augmented_dataset"
    )
    assert none["output_dir"] != two["output_dir"]
    assert none["images"] == 4
    assert snapshot(Path(two["output_dir"])) == kept
    # variants=0: the originals are hard links, not copies.
    for image in (Path(none["output_dir"]) / "images").iterdir():
        assert image.stat().st_nlink >= 2


def test_one_bad_image_is_reported_not_fatal(harness, layout, tmp_path):
    harness.add_samples(3, seed=5)
    annotations = annotations_of(layout, harness.catalog)
    broken = dict(annotations[0], name="broken", content_hash="0" * 64)
    broken["image"] = str(tmp_path / "broken.jpg")
    Path(broken["image"]).write_bytes(b"changed after validation")
    result = augment_dataset(
        [*annotations, broken], tmp_path / "out", AugmentSettings(variants=2), 1
    )
    assert set(result.failures) == {"broken"}
    assert "decode" in result.failures["broken"]
    assert {e["source"] for e in result.entries} == {a["name"] for a in annotations}
    assert not list((result.output_dir / "images").glob("broken*"))


def test_empty_label_still_gives_every_output(harness, layout, tmp_path):
    harness.add_samples(1, seed=6)
    [annotation] = annotations_of(layout, harness.catalog)
    Path(annotation["label"]).write_text("")
    annotation = dict(annotation, boxes=[])
    result = augment_dataset([annotation], tmp_path / "out", AugmentSettings(variants=7), 1)
    assert len(result.entries) == 8
    assert all(Path(e["label"]).read_text() == "" for e in result.entries)


@pytest.mark.parametrize(
    ("box", "kept"),
    [
        ((0.5, 0.5, 0.2, 0.2), True),
        ((0.5, 0.5, 0.009, 0.2), False),
        ((0.5, 0.5, 0.2, 0.005), False),
    ],
)
def test_tiny_boxes_are_dropped(box, kept):
    assert bool(format_boxes([3], [box], min_box_size=0.01)) == kept


def test_variants_are_bounded():
    with pytest.raises(ValueError, match="variants"):
        AugmentSettings(variants=8)


def test_a_name_equal_to_a_variant_output_is_reported_not_overwritten(harness, layout, tmp_path):
    harness.add_samples(1, seed=7)
    [annotation] = annotations_of(layout, harness.catalog)
    clash = dict(annotation, name=f"{annotation['name']}_2")
    result = augment_dataset([annotation, clash], tmp_path / "out", AugmentSettings(variants=3), 1)
    assert set(result.failures) == {clash["name"]}
    assert (result.augmented, result.skipped) == (1, 0)
    assert {e["source"] for e in result.entries} == {annotation["name"]}
