"""Decoding the platform's messages: the status property's spellings, and nothing but a
``DeadLetter`` for any body whatsoever (a bad message must never stop the consumer)."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from azaion_pipeline.lib.intake.messages import (
    AnnotationStatus,
    DeadLetter,
    DeadLetterReason,
    Detection,
    Role,
    decode,
    encode_annotation,
    status_of,
)


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (10, AnnotationStatus.CREATED),
        ("20", AnnotationStatus.EDITED),
        (b"30", AnnotationStatus.VALIDATED),
        ("Deleted", AnnotationStatus.DELETED),
        ("CREATED", AnnotationStatus.CREATED),
    ],
)
def test_status_property_spellings(sent, expected):
    assert status_of(sent) is expected


@pytest.mark.parametrize("sent", [None, 11, "Approved", True, 10.0, b"\xff"])
def test_unknown_status(sent):
    with pytest.raises(DeadLetter) as caught:
        status_of(sent)
    assert caught.value.reason is DeadLetterReason.UNKNOWN_STATUS


def test_undecodable_image_is_a_dead_letter_after_ultralytics_patched_pil():
    import ultralytics  # noqa: F401  (patches PIL.Image.open for the whole process)

    body = encode_annotation(
        name="a1", image=b"not an image", label_boxes=[], created_role=Role.VALIDATOR,
        created_email="v@example.com",
    )  # fmt: skip
    with pytest.raises(DeadLetter) as caught:
        decode(body, AnnotationStatus.CREATED)
    assert caught.value.reason is DeadLetterReason.IMAGE_UNDECODABLE


def test_detection_keys_in_either_spelling():
    snake = {"annotation_name": "a", "cls": 2, "x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4}
    pascal = {"AnnotationName": "a", "Cls": 2, "X": 0.1, "Y": 0.2, "W": 0.3, "H": 0.4}
    assert Detection.parse(snake) == Detection.parse(pascal)
    assert Detection.parse(pascal).confidence == 1.0


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=12)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=30,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=200) | msgpack_values.map(msgpack.packb),
    status=st.sampled_from([10, 20, 30, 40]),
)
def test_any_body_decodes_or_is_a_dead_letter(body, status):
    try:
        decode(body, status)
    except DeadLetter as letter:
        assert letter.reason in DeadLetterReason and letter.detail
