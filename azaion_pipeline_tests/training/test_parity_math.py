"""The box arithmetic behind onnx_matches_pytorch, on hand-made detections."""

import numpy as np
import pytest

from azaion_pipeline.lib.parity import Detections, box_iou, map50_95, match_boxes

TRUTH = Detections(np.array([[10.0, 10, 50, 50], [60, 60, 100, 100]]), np.ones(2), np.array([0, 3]))


def shifted(dx: float, classes=(0, 3)) -> Detections:
    return Detections(TRUTH.boxes + dx, np.array([0.9, 0.8]), np.array(classes))


def test_box_iou_of_identical_and_disjoint_boxes():
    iou = box_iou(TRUTH.boxes, TRUTH.boxes)
    assert iou[0, 0] == pytest.approx(1.0) and iou[0, 1] == 0.0


@pytest.mark.parametrize(
    ("prediction", "low", "high"),
    [
        (shifted(0), 0.99, 1.0),  # perfect
        (shifted(6), 0.19, 0.21),  # IoU 0.57: counts at 0.50 and 0.55 only → 2/10
        (shifted(0, classes=(1, 2)), 0.0, 0.0),  # right place, wrong classes
    ],
)
def test_map50_95(prediction, low, high):
    assert low <= map50_95([prediction], [TRUTH]) <= high


@pytest.mark.parametrize(("dx", "matched"), [(0, 2), (1, 2), (6, 0)])
def test_match_boxes_needs_iou_09_and_the_same_class(dx, matched):
    count, ious = match_boxes(TRUTH, shifted(dx), min_iou=0.9)
    assert count == matched and all(v >= 0.9 for v in ious)
    assert match_boxes(TRUTH, shifted(0, classes=(3, 0)), 0.9)[0] == 0
