"""Duplicates resolve for what is trusted and first; the newer quarantine reasons, with real files."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from azaion_pipeline.lib.dataset.annotations import Reason
from azaion_pipeline.lib.dataset.quarantine import read_reasons

BOX = "0 0.500000 0.500000 0.200000 0.200000\n"


def jpeg(seed: int, size=(64, 48)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return cv2.imencode(".jpg", pixels)[1].tobytes()


def put(folder: Path, name: str, image: bytes, label: str = BOX) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    (folder / "images" / f"{name}.jpg").write_bytes(image)
    (folder / "labels" / f"{name}.txt").write_text(label)


def next_tick() -> None:
    """File times come from the kernel's coarse clock: wait past its tick (a few ms)."""
    time.sleep(0.05)


def reasons(layout) -> dict[str, dict]:
    return {line["name"]: line for line in read_reasons(layout.corrupted)}


def test_an_incumbent_is_never_displaced_by_a_later_copy(harness, layout):
    put(layout.data, "m-incumbent", jpeg(1))
    catalogue, _ = harness.ingest()
    catalogue.close()
    put(layout.data, "a-newcomer", jpeg(1), "1 0.5 0.5 0.1 0.1\n")  # sorts first
    catalogue, report = harness.ingest()
    with catalogue:
        assert {a.name for a in catalogue.iter_annotations()} == {"m-incumbent"}
    line = reasons(layout)["a-newcomer"]
    assert line["reason"] == "duplicate_of:m-incumbent"
    assert "the labels differ" in line["detail"] and "m-incumbent" in line["detail"]
    assert report.duplicates == 1


def test_data_beats_seed_whatever_came_first(harness, layout):
    put(layout.data_seed, "a-operator", jpeg(2), "1 0.5 0.5 0.1 0.1\n")
    next_tick()
    put(layout.data, "z-validated", jpeg(2))
    catalogue, _ = harness.ingest(include_seed=True)
    with catalogue:
        assert {a.name for a in catalogue.iter_annotations()} == {"z-validated"}
    line = reasons(layout)["a-operator"]
    assert line["reason"] == "duplicate_of:z-validated" and line["origin"] == "data-seed"
    assert "the labels differ" in line["detail"]


def test_the_earliest_arrival_wins_and_name_order_only_breaks_ties(harness, layout):
    put(layout.data, "z-first", jpeg(3))
    next_tick()
    put(layout.data, "a-second", jpeg(3))
    put(layout.data, "c-tie", jpeg(4))
    # A second name for the same inode: both images have the same arrival time, a true tie.
    os.link(layout.data / "images" / "c-tie.jpg", layout.data / "images" / "b-tie.jpg")
    shutil.copyfile(layout.data / "labels" / "c-tie.txt", layout.data / "labels" / "b-tie.txt")
    catalogue, _ = harness.ingest()
    with catalogue:
        kept = {a.name for a in catalogue.iter_annotations()}
    lines = reasons(layout)
    assert kept == {"z-first", "b-tie"}
    assert lines["a-second"]["reason"] == "duplicate_of:z-first"
    assert "the labels are identical" in lines["a-second"]["detail"]
    assert lines["c-tie"]["reason"] == "duplicate_of:b-tie"


def big_label(lines: int) -> str:
    return BOX * lines


@pytest.mark.parametrize(
    ("name", "image", "label", "rules", "reason", "detail"),
    [
        (
            "huge-label",
            jpeg(5),
            big_label(4 * 1024 * 1024 // len(BOX) + 10),
            {},
            Reason.LABEL_TOO_LARGE,
            "bytes",
        ),
        ("many-boxes", jpeg(6), big_label(1001), {}, Reason.LABEL_TOO_LARGE, "1001 boxes"),
        (
            "few-boxes",
            jpeg(7),
            big_label(11),
            {"max_boxes": 10},
            Reason.LABEL_TOO_LARGE,
            "11 boxes",
        ),
        ("thin", jpeg(8, (9, 40)), BOX, {}, Reason.IMAGE_TOO_SMALL, "9x40"),
        (".hidden", jpeg(9), BOX, {}, Reason.HIDDEN_NAME, "dot"),
    ],
)
def test_each_new_reason_quarantines_real_files(
    harness, layout, name, image, label, rules, reason, detail
):
    put(layout.data, name, image, label)
    put(layout.data, "fine", jpeg(10))
    inputs = {p.name: p.read_bytes() for p in layout.data.rglob("*") if p.is_file()}
    catalogue, _ = harness.ingest(**rules)
    with catalogue:
        assert [a.name for a in catalogue.iter_annotations()] == ["fine"]
    line = reasons(layout)[name]
    assert line["reason"] == reason
    assert detail in line["detail"] or (detail == "dot" and "'.'" in line["detail"])
    moved = {Path(p).name: Path(p).read_bytes() for p in line["files"]}
    assert moved == {f"{name}.jpg": inputs[f"{name}.jpg"], f"{name}.txt": inputs[f"{name}.txt"]}


@pytest.mark.parametrize("linked", ["images", "labels"])
def test_a_symlink_is_quarantined_and_its_target_never_linked(harness, layout, tmp_path, linked):
    outside = tmp_path / "outside"
    put(outside, "target", jpeg(11))
    put(layout.data, "linked", jpeg(12))
    suffix = ".jpg" if linked == "images" else ".txt"
    link = layout.data / linked / f"linked{suffix}"
    link.unlink()
    link.symlink_to(outside / linked / f"target{suffix}")
    catalogue, _ = harness.ingest()
    with catalogue:
        assert list(catalogue.iter_annotations()) == []
    line = reasons(layout)["linked"]
    assert line["reason"] == Reason.SYMLINK and f"linked{suffix}" in line["detail"]
    moved = [Path(p) for p in line["files"]]
    assert any(p.is_symlink() for p in moved)  # the link itself moved; the target stays
    target = outside / linked / f"target{suffix}"
    assert target.exists() and target.stat().st_nlink == 1


def test_an_incumbent_that_breaks_keeps_no_copy_out(harness, layout):
    put(layout.data, "m-incumbent", jpeg(13))
    harness.ingest()[0].close()
    (layout.data / "labels" / "m-incumbent.txt").write_text("0 1.5 0.5 0.2 0.2\n")  # broken edit
    put(layout.data, "z-copy", jpeg(13))
    catalogue, report = harness.ingest()
    with catalogue:
        assert [a.name for a in catalogue.iter_annotations()] == ["z-copy"]
    assert reasons(layout)["m-incumbent"]["reason"] == Reason.COORDS_OUT_OF_RANGE
    assert report.accepted == ["z-copy"]
