"""augmented_dataset: deterministic, incremental, content-addressed, failures leave nothing."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from azaion_pipeline.defs.dataset.augmented_dataset import augmented_dataset
from azaion_pipeline.defs.dataset.raw_annotations import raw_annotations
from azaion_pipeline.lib import files
from azaion_pipeline.lib.dataset.annotations import parse_label
from azaion_pipeline.lib.dataset.augment import AugmentSettings, augment_pending, format_boxes
from azaion_pipeline.lib.dataset.checks import MODEL_CLASS_IDS


def snapshot(folder: Path) -> dict[Path, tuple[int, int]]:
    """Each file's inode and modification time: a rewrite changes one of them."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def label_texts(output_dir: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((output_dir / "labels").glob("*.txt"))}


def test_same_content_gives_identical_outputs_inline_and_in_processes(make_harness, tmp_path):
    results = {}
    for workers in (2, 1):  # 20 annotations: workers=2 really starts a process pool
        harness = make_harness(tmp_path / f"w{workers}")
        harness.add_samples(22)  # 20 in data/, 2 in data-seed/
        catalogue, _ = harness.ingest()
        with catalogue:
            report = augment_pending(
                catalogue, harness.layout.processed, AugmentSettings(variants=3), workers
            )
        assert not report.failures and report.augmented == 20
        results[workers] = report.output_dir
    pooled, inline = results[2], results[1]
    assert len(list((pooled / "images").iterdir())) == 20 * 4
    assert label_texts(pooled) == label_texts(inline)
    for image in (pooled / "images").iterdir():
        assert image.read_bytes() == (inline / "images" / image.name).read_bytes()
    # Variants really differ from their original (the transforms did something).
    texts = label_texts(pooled)
    variants = [name for name in texts if name.split(".")[0].rpartition("_")[2].isdigit()]
    originals = {name.split(".")[0]: text for name, text in texts.items() if name not in variants}
    changed = sum(texts[v] != originals[v.split(".")[0].rpartition("_")[0]] for v in variants)
    assert changed > len(variants) // 2
    for text in texts.values():
        parse_label(text, MODEL_CLASS_IDS)  # every output box stays in range


def test_second_materialisation_touches_only_new_annotations(harness, layout):
    old = len(harness.add_samples(8, seed=1).valid)
    config = harness.run_config(variants=2)
    assets = [raw_annotations, augmented_dataset]
    first = harness.metadata(harness.materialize(assets, config), "augmented_dataset")
    assert first["augmented_now"] == old
    before = snapshot(layout.processed)

    added = harness.add_samples(3, seed=2).valid  # new names; fewer than 5: none in data-seed
    second = harness.metadata(harness.materialize(assets, config), "augmented_dataset")
    after = snapshot(layout.processed)

    new = set(after) - set(before)
    assert len(new) == len(added) * 3 * 2  # annotations x (original + 2 variants) x image+label
    assert all(after[p] == before[p] for p in before)  # nothing rewritten, no state file
    assert second["augmented_now"] == len(added)

    third = harness.metadata(harness.materialize(assets, config), "augmented_dataset")
    assert third["augmented_now"] == 0 and snapshot(layout.processed) == after


def test_an_edited_label_gets_new_files_and_the_old_ones_stay(harness, layout):
    report = harness.add_samples(4, seed=3)
    catalogue, _ = harness.ingest()
    settings = AugmentSettings(variants=1)
    with catalogue:
        augment_pending(catalogue, layout.processed, settings, 1)
        edited = report.valid[0]
        old_files = {p.name for p in layout.processed.rglob(f"{edited}*")}
        (layout.data / "labels" / f"{edited}.txt").write_text("0 0.5 0.5 0.25 0.25\n")
        harness_report = harness.ingest()[1]
        assert harness_report.updated == [edited]
        again = augment_pending(catalogue, layout.processed, settings, 1)
    assert again.augmented == 1
    new_files = {p.name for p in layout.processed.rglob(f"{edited}*")} - old_files
    assert len(new_files) == 4  # original + 1 variant, image + label, under a new hash
    # The older files stay for versions that list them, until retention.
    assert all(next(layout.processed.rglob(name), None) for name in old_files)


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
    assert none["images"] > 0
    assert snapshot(Path(two["output_dir"])) == kept
    # variants=0: the original images are hard links, not copies.
    for image in (Path(none["output_dir"]) / "images").iterdir():
        assert image.stat().st_nlink >= 2


def test_one_bad_image_is_reported_not_fatal(harness, layout):
    report = harness.add_samples(3, seed=5)
    catalogue, _ = harness.ingest()
    broken = report.valid[0]
    # Changed after validation, under the same stat keys the catalogue trusts no more.
    (layout.data / "images" / f"{broken}.jpg").write_bytes(b"changed after validation")
    with catalogue:
        result = augment_pending(catalogue, layout.processed, AugmentSettings(variants=2), 1)
    assert set(result.failures) == {broken}
    assert "decode" in result.failures[broken]
    assert result.augmented == 2
    assert not list(layout.processed.rglob(f"{broken}*"))


def test_a_full_disk_mid_augmentation_leaves_no_stray_files(harness, layout, monkeypatch):
    harness.add_samples(3, seed=6)
    catalogue, _ = harness.ingest()
    real_open = open
    writes = []

    def filling_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        if "w" not in mode:
            return handle
        writes.append(path)
        if len(writes) < 4:
            return handle

        class Full:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                handle.close()

            def write(self, data):
                handle.write(data[: len(data) // 2])  # part of it lands, then the disk is full
                raise OSError(errno.ENOSPC, "No space left on device")

        return Full()

    monkeypatch.setattr(files, "open", filling_open, raising=False)
    with catalogue:
        result = augment_pending(catalogue, layout.processed, AugmentSettings(variants=3), 1)
        assert result.failures and all("No space left" in e for e in result.failures.values())
        assert not [p for p in layout.processed.rglob("*") if p.name.endswith(".tmp")]
        for name in result.failures:
            assert not list(layout.processed.rglob(f"{name}*"))
        monkeypatch.undo()
        retried = augment_pending(catalogue, layout.processed, AugmentSettings(variants=3), 1)
    assert retried.augmented == len(result.failures) and not retried.failures


def test_empty_label_still_gives_every_output(harness, layout):
    [name] = harness.add_samples(1, seed=6).valid
    (layout.data / "labels" / f"{name}.txt").write_text("")
    catalogue, _ = harness.ingest()
    with catalogue:
        result = augment_pending(catalogue, layout.processed, AugmentSettings(variants=7), 1)
    labels = list((result.output_dir / "labels").iterdir())
    assert len(labels) == 8 and all(p.read_text() == "" for p in labels)


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


def test_a_name_equal_to_a_variant_output_overwrites_nothing(harness, layout):
    [name] = harness.add_samples(1, seed=7).valid
    [other] = harness.add_samples(1, seed=8).valid
    for sub, suffix in (("images", ".jpg"), ("labels", ".txt")):
        (layout.data / sub / f"{other}{suffix}").rename(layout.data / sub / f"{name}_2{suffix}")
    catalogue, report = harness.ingest()
    with catalogue:
        result = augment_pending(catalogue, layout.processed, AugmentSettings(variants=3), 1)
    assert sorted(report.accepted) == sorted([name, f"{name}_2"])
    assert result.augmented == 2 and not result.failures
    assert len(list((result.output_dir / "images").iterdir())) == 8
