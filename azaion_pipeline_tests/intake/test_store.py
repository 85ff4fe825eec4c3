"""The store on its own: pairs that predate the intake, and a move a crash cut in half."""

from __future__ import annotations

import os

import pytest

from azaion_pipeline.lib.intake.messages import (
    AnnotationBulkMessage,
    AnnotationStatus,
    Role,
    decode,
    encode_annotation,
)
from azaion_pipeline.lib.intake.provenance import read_provenance
from azaion_pipeline.lib.intake.store import AnnotationStore, Effect
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline_tests.intake.conftest import jpeg


@pytest.fixture
def store(tmp_path) -> AnnotationStore:
    store = AnnotationStore(AzaionLayout.under(tmp_path))
    store.prepare()
    return store


def _files(root, name: str) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob(f"{name}.*") if "intake" not in p.parts
    )


def test_validating_a_pair_that_predates_the_intake(store, tmp_path):
    seed = store.layout.data_seed
    (seed / "images" / "old.png").write_bytes(b"png bytes")
    (seed / "labels" / "old.txt").write_text("1 0.5 0.5 0.1 0.1\n")
    message = AnnotationBulkMessage(names=("old",), status=AnnotationStatus.VALIDATED)
    assert store.apply(message, 7).effect is Effect.MOVED
    assert _files(tmp_path, "old") == [
        "data/images/old.png",
        "data/labels/old.txt",
        "data/provenance/old.json",
    ]
    provenance = read_provenance(tmp_path / "data" / "labels" / "old.txt")
    assert provenance.offset == 7 and provenance.original_media_name is None
    # Applying it again (a replay) changes nothing.
    assert store.apply(message, 7).effect is Effect.SKIPPED


def test_a_move_cut_short_by_a_crash_completes_on_replay(store, tmp_path):
    body = encode_annotation(
        name="cut", image=jpeg(1), label_boxes=[], created_role=Role.OPERATOR, created_email="x"
    )
    store.apply(decode(body, AnnotationStatus.CREATED), 3)
    # The crash: Deleted had moved the label (first) and nothing else.
    os.replace(
        store.layout.data_seed / "labels" / "cut.txt",
        store.layout.data_deleted / "labels" / "cut.txt",
    )
    deleted = AnnotationBulkMessage(names=("cut",), status=AnnotationStatus.DELETED)
    assert store.apply(deleted, 4).effect is Effect.MOVED
    assert _files(tmp_path, "cut") == [
        "data_deleted/images/cut.jpg",
        "data_deleted/labels/cut.txt",
        "data_deleted/provenance/cut.json",
    ]
    assert read_provenance(tmp_path / "data_deleted" / "images" / "cut.jpg").offset == 4
