"""raw_annotations: every quarantine reason with a real bad file; nothing is ever lost."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from azaion_pipeline.defs.dataset.raw_annotations import raw_annotations
from azaion_pipeline.lib.dataset.annotations import Reason, Rejection
from azaion_pipeline.lib.dataset.catalogue import Catalogue
from azaion_pipeline.lib.dataset.quarantine import quarantine, read_reasons


def all_files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def defective(harness, layout):
    report = harness.add_samples(12, with_defects=True)
    # Beyond the sample defects: two images under one name, and one name in both
    # data/ and data-seed/ (seed is included in these runs).
    jpeg = next((layout.data / "images").glob("*.jpg"))
    shutil.copyfile(jpeg, jpeg.with_suffix(".png"))
    clash = report.seed[0]
    for sub, suffix in (("images", ".jpg"), ("labels", ".txt")):
        shutil.copyfile(
            layout.data_seed / sub / f"{clash}{suffix}", layout.data / sub / f"{clash}{suffix}"
        )
    (layout.data / "labels" / "notes.csv").write_text("not a label")
    return report, jpeg.stem, clash


def run_raw(harness, include_seed=True, **config):
    config = {"include_seed": include_seed, "workers": 1, **config}
    result = harness.materialize(
        [raw_annotations], {"ops": {"raw_annotations": {"config": config}}}
    )
    return result, harness.metadata(result, "raw_annotations")


def test_every_reason_is_quarantined_with_a_line(harness, layout, defective):
    report, png_clash, seed_clash = defective
    inputs = all_files(layout.data) | all_files(layout.data_seed)

    _, metadata = run_raw(harness)

    reasons = read_reasons(layout.corrupted)
    by_name = {line["name"]: line for line in reasons}
    for kind, names in report.defects.items():
        for name in names:
            line = by_name[name]
            expected = "duplicate_of" if kind == "duplicate" else kind
            assert line["reason"].split(":")[0] == expected, (name, line)
            assert line["detail"] and line["detected_at"]
            for moved in line["files"]:
                assert Path(moved).is_relative_to(layout.corrupted) and Path(moved).exists()
    assert by_name[report.defects["duplicate"][0]]["reason"] == (
        f"duplicate_of:{report.defects['duplicate'][0].removesuffix('-copy')}"
    )
    assert by_name[seed_clash]["reason"] == Reason.NAME_CONFLICT
    assert by_name[seed_clash]["origin"] == "data-seed"
    assert by_name["notes.csv"]["reason"] == Reason.LABEL_SYNTAX
    assert any(
        line["reason"] == Reason.NAME_CONFLICT and line["name"] == png_clash for line in reasons
    )
    assert not (layout.data / "images" / f"{png_clash}.png").exists()

    # One line per rejection, and the counts agree with the file.
    assert metadata["quarantined"] == len(reasons)
    assert metadata["duplicates"] == 1
    assert metadata["quarantined_by_reason"]["image_unreadable"] == 4
    # The reasons the sample defects cover (the newer ones have their own tests).
    newer = {"name_conflict", "image_too_small", "label_too_large", "hidden_name", "symlink"}
    assert set(metadata["quarantined_by_reason"]) >= {r.value for r in Reason} - newer

    # Nothing lost: every input name is in the catalogue or in reasons.jsonl, and every
    # input file still exists, either in place or under data-corrupted/.
    with Catalogue.of(layout) as catalogue:
        accepted = list(catalogue.iter_annotations())
    valid = {a.name for a in accepted}
    assert len(valid) == metadata["valid"] == 12 + len(report.seed) - 1
    input_names = {p.stem for p in inputs} - {"notes"} | {"notes.csv"}
    assert input_names <= valid | set(by_name)
    remaining = all_files(layout.data) | all_files(layout.data_seed)
    corrupted = all_files(layout.corrupted) - {layout.corrupted / "reasons.jsonl"}
    assert len(remaining) + len(corrupted) == len(inputs)
    assert all(Path(a.image).exists() and Path(a.label).exists() for a in accepted)


def test_rerun_is_stable_and_quarantines_nothing_twice(harness, layout):
    harness.add_samples(6, with_defects=True)
    first, first_metadata = run_raw(harness, include_seed=False)
    second, second_metadata = run_raw(harness, include_seed=False)
    assert second_metadata["quarantined"] == 0
    assert second_metadata["validated_now"] == 0  # unchanged files are not decoded again
    assert len(read_reasons(layout.corrupted)) == first_metadata["quarantined"]
    version = [
        r.asset_materializations_for_node("raw_annotations")[0].tags["dagster/data_version"]
        for r in (first, second)
    ]
    assert version[0] == version[1]


def test_seed_is_left_alone_unless_asked(harness, layout):
    report = harness.add_samples(10)
    _, metadata = run_raw(harness, include_seed=False)
    assert metadata["valid"] == len(report.valid)
    assert sorted(p.stem for p in (layout.data_seed / "images").iterdir()) == sorted(report.seed)


def test_pixel_limit_is_configurable(harness):
    harness.add_samples(3)
    _, metadata = run_raw(harness, include_seed=False, max_image_pixels=64 * 48 - 1)
    # Every sample image is at least 64x48, so each one is over this limit.
    assert metadata["valid"] == 0
    assert metadata["quarantined_by_reason"] == {"image_too_large": 3}


def test_quarantine_never_overwrites_an_earlier_one(tmp_path):
    corrupted = tmp_path / "data-corrupted"
    for content in ("first", "second"):
        label = tmp_path / "data" / "labels" / "x.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(content)
        quarantine(corrupted, [Rejection("x", Reason.IMAGE_MISSING, "no image", [label])])
    assert (corrupted / "labels" / "x.txt").read_text() == "first"
    assert (corrupted / "labels" / "x.txt.1").read_text() == "second"
    assert len(read_reasons(corrupted)) == 2


def test_a_changed_label_is_validated_again(harness, layout):
    report = harness.add_samples(4)
    run_raw(harness, include_seed=False)
    label = layout.data / "labels" / f"{report.valid[0]}.txt"
    label.write_text("0 0.5 0.5 1.5 0.2\n")  # edited after the first run: now out of range
    _, metadata = run_raw(harness, include_seed=False)
    assert metadata["validated_now"] == 1
    assert metadata["quarantined_by_reason"] == {"coords_out_of_range": 1}
    assert metadata["valid"] == 3
