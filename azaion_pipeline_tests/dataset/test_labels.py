"""Label parsing and name safety: table-driven, plus hypothesis for the parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azaion_pipeline.lib.dataset.annotations import (
    AnnotationError,
    Box,
    Reason,
    parse_label,
    unsafe_name_detail,
)
from azaion_pipeline.lib.sample_data import format_label

VALID_IDS = frozenset([*range(17), *range(20, 37), *range(40, 57)])


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0 0.5 0.5 0.2", Reason.LABEL_SYNTAX),
        ("0 0.5 0.5 0.2 0.2 0.1", Reason.LABEL_SYNTAX),
        ("tank 0.5 0.5 0.2 0.2", Reason.LABEL_SYNTAX),
        ("0 0.5 0.5 0.2 nan", Reason.LABEL_SYNTAX),
        ("0 0.5 0.5 0.2 inf", Reason.LABEL_SYNTAX),
        ("1.5 0.5 0.5 0.2 0.2", Reason.LABEL_SYNTAX),
        ("17 0.5 0.5 0.2 0.2", Reason.CLASS_UNKNOWN),
        ("57 0.5 0.5 0.2 0.2", Reason.CLASS_UNKNOWN),
        ("-1 0.5 0.5 0.2 0.2", Reason.CLASS_UNKNOWN),
        ("0 1.01 0.5 0.2 0.2", Reason.COORDS_OUT_OF_RANGE),
        ("0 0.5 -0.1 0.2 0.2", Reason.COORDS_OUT_OF_RANGE),
        ("0 0.5 0.5 0.0 0.2", Reason.BOX_DEGENERATE),
        ("0 0.5 0.5 0.2 0", Reason.BOX_DEGENERATE),
        ("0 0.5 0.5 0.2 0.2\n3 0.5 0.5 1.5 0.2", Reason.COORDS_OUT_OF_RANGE),
    ],
)
def test_bad_lines_give_their_reason(text, reason):
    with pytest.raises(AnnotationError) as error:
        parse_label(text, VALID_IDS)
    assert error.value.reason == reason


@pytest.mark.parametrize(
    ("text", "boxes"),
    [
        ("", []),
        ("\n  \n", []),
        ("40 0.5 0.5 1 1\n", [Box(40, 0.5, 0.5, 1.0, 1.0)]),
        ("0 0 0 0.1 0.1\r\n21 1 1 0.2 0.3", [Box(0, 0, 0, 0.1, 0.1), Box(21, 1, 1, 0.2, 0.3)]),
    ],
)
def test_valid_labels(text, boxes):
    assert parse_label(text, VALID_IDS) == boxes


unit = st.floats(0, 1, allow_nan=False)
positive = st.floats(0.001, 1, allow_nan=False)
boxes = st.lists(
    st.tuples(st.sampled_from(sorted(VALID_IDS)), unit, unit, positive, positive), max_size=20
)


@given(boxes)
def test_written_labels_parse_back(written):
    parsed = parse_label(format_label(written), VALID_IDS)
    assert [b.class_id for b in parsed] == [c for c, *_ in written]
    for box, (_, cx, cy, w, h) in zip(parsed, written, strict=True):
        assert box.cx == pytest.approx(cx, abs=1e-6)
        assert box.w == pytest.approx(w, abs=1e-6)
        assert box.h == pytest.approx(h, abs=1e-6)
        assert box.cy == pytest.approx(cy, abs=1e-6)


@given(st.text())
def test_any_text_parses_or_raises_a_reason(text):
    try:
        parsed = parse_label(text, VALID_IDS)
    except AnnotationError as error:
        assert error.reason in set(Reason)
    else:
        assert all(b.class_id in VALID_IDS and 0 < b.w <= 1 and 0 < b.h <= 1 for b in parsed)


@pytest.mark.parametrize(
    ("name", "unsafe"),
    [
        ("6f1c2a3e-0d4b-4f8e-9a7b-1c2d3e4f5a6b", False),
        ("frame_0001", False),
        ("a/b", True),
        ("a\\b", True),
        ("..", True),
        ("x..y", True),
        ("bad\x07name", True),
        ("tab\there", True),
        ("x" * 255, False),
        ("x" * 256, True),
        ("я" * 128, True),  # 256 bytes in UTF-8
        ("", True),
    ],
)
def test_unsafe_names(name, unsafe):
    assert (unsafe_name_detail(name) is not None) == unsafe
