"""COCO-style AP of detections against ground truth, through faster-coco-eval.

Boxes are normalised xyxy (fractions of the image): IoU does not change under per-axis
scaling, and box areas then match the size-bucket edges taken from the training labels.
Besides the library's AP tables, ``score`` keeps each detection's match (faster-coco-eval's
own matching at IoU 0.5) so the bootstrap, the thresholds and the flip report reuse it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict

from azaion_pipeline.lib.classes import WEATHER_OFFSETS
from azaion_pipeline.lib.evaluation.slices import SizeBuckets, weather_mode
from azaion_pipeline.lib.parity import Detections

MAX_DETECTIONS = 300  # the ONNX graph's max_det: COCO must not cut a model's output shorter
MATCH_IOU = 0.5
# ultralytics' predict default, for classes the test split gives no F1 optimum
DEFAULT_CONF = 0.25


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class ApPair(Frozen):
    ap50: float
    ap50_95: float
    boxes: int  # ground-truth boxes in the slice


class ClassThreshold(Frozen):
    """The confidence that maximises F1 at IoU 0.5, and what it gives on the test split."""

    conf: float
    f1: float
    precision: float
    recall: float


class EvaluationSummary(Frozen):
    images: int
    overall: ApPair
    per_class: dict[int, ApPair]
    class_names: dict[int, str]
    per_weather: dict[str, ApPair]
    per_size: dict[str, ApPair]
    size_buckets: SizeBuckets
    thresholds: dict[int, ClassThreshold]

    def class_label(self, class_id: int) -> str:
        return self.class_names.get(class_id, f"Class-{class_id}")


@dataclass(frozen=True)
class MatchTable:
    """Every detection and ground-truth box of one model on one test split, flattened."""

    images: list[str]
    det_image: np.ndarray  # (D,) image index
    det_class: np.ndarray  # (D,)
    det_score: np.ndarray  # (D,)
    det_box: np.ndarray  # (D, 4) normalised xyxy
    det_iou: np.ndarray  # (D,) IoU with the matched ground truth, 0 when unmatched
    det_gt: np.ndarray  # (D,) index of the matched ground-truth box, -1 when unmatched
    gt_image: np.ndarray  # (G,)
    gt_class: np.ndarray  # (G,)
    gt_box: np.ndarray  # (G, 4)

    def gt_counts(self, class_ids: list[int]) -> np.ndarray:
        """(images, classes) ground-truth box counts."""
        counts = np.zeros((len(self.images), len(class_ids)), dtype=np.int64)
        column = {c: i for i, c in enumerate(class_ids)}
        for image, cls in zip(self.gt_image, self.gt_class, strict=True):
            counts[image, column[int(cls)]] += 1
        return counts


@dataclass(frozen=True)
class Scores:
    summary: EvaluationSummary
    matches: MatchTable
    precision: np.ndarray  # faster-coco-eval's (T, R, K, A) at the largest maxDets
    categories: list[int]  # class id of each K
    confusion: np.ndarray  # (K, K + 2) at the per-class thresholds, see ``confusion_matrix``


def _xywh(boxes: np.ndarray) -> np.ndarray:
    return np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])


def _flatten(items: list[Detections]) -> tuple[np.ndarray, ...]:
    image = np.concatenate([np.full(len(d.classes), i) for i, d in enumerate(items)] or [[]])
    classes = np.concatenate([d.classes for d in items] or [[]]).astype(int)
    scores = np.concatenate([d.scores for d in items] or [[]]).astype(float)
    boxes = np.concatenate([d.boxes.reshape(-1, 4) for d in items] or [np.zeros((0, 4))])
    return image.astype(int), classes, scores, boxes.astype(float)


def _coco_pair(truth, pred, categories: list[int], n_images: int):
    """faster-coco-eval ground truth and detections (ids 1..n in our array order)."""
    from faster_coco_eval import COCO

    gt_image, gt_class, _, gt_box = truth
    det_image, det_class, det_score, det_box = pred
    gt_xywh, det_xywh = _xywh(gt_box), _xywh(det_box)
    ground = COCO()
    ground.dataset = {
        "images": [{"id": i + 1, "width": 1, "height": 1} for i in range(n_images)],
        "categories": [{"id": c} for c in categories],
        "annotations": [
            {"id": j + 1, "image_id": int(gt_image[j]) + 1, "category_id": int(gt_class[j]),
             "bbox": gt_xywh[j].tolist(), "area": float(gt_xywh[j, 2] * gt_xywh[j, 3]),
             "iscrowd": 0}
            for j in range(len(gt_class))
        ],
    }  # fmt: skip
    ground.createIndex()
    # loadRes numbers detections 1..D in the order given, so ids map back to our arrays
    found = ground.loadRes(
        [
            {"image_id": int(det_image[j]) + 1, "category_id": int(det_class[j]),
             "bbox": det_xywh[j].tolist(), "score": float(det_score[j])}
            for j in range(len(det_class))
        ]
    )  # fmt: skip
    return ground, found


def _coco_eval(ground, found, ranges: dict) -> dict:
    from faster_coco_eval import COCOeval_faster

    evaluator = COCOeval_faster(
        ground, found, "bbox", ranges=ranges, extra_calc=True, print_function=lambda *_: None
    )
    evaluator.params.maxDets = [MAX_DETECTIONS]
    evaluator.evaluate()
    evaluator.accumulate()
    return evaluator.eval


def confusion_matrix(ground, found) -> np.ndarray:
    """faster-coco-eval's class-agnostic matching at IoU 0.5: (K, K + 2), the last two
    columns the false positives and false negatives of each class."""
    from faster_coco_eval.extra import PreviewResults

    preview = PreviewResults(ground, found, iouType="bbox", iou_tresh=MATCH_IOU, useCats=False)
    return preview.compute_confusion_matrix()


def _mean_valid(values: np.ndarray) -> float | None:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else None


def f1_threshold(scores: np.ndarray, tp: np.ndarray, n_truth: int) -> ClassThreshold | None:
    """F1-optimal confidence over one class's detections (None without a true positive)."""
    if n_truth == 0 or not tp.any():
        return None
    order = np.argsort(-scores, kind="mergesort")
    hits = np.cumsum(tp[order])
    precision = hits / np.arange(1, len(order) + 1)
    recall = hits / n_truth
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1))
    return ClassThreshold(
        conf=float(scores[order][best]),
        f1=float(f1[best]),
        precision=float(precision[best]),
        recall=float(recall[best]),
    )


def score(
    images: list[str],
    truths: list[Detections],
    predictions: list[Detections],
    names: dict[int, str],
    buckets: SizeBuckets,
) -> Scores:
    """AP50 and AP50-95 overall, per class, per weather mode and per size bucket."""
    truth = _flatten(truths)
    pred = _flatten(predictions)
    gt_image, gt_class, _, gt_box = truth
    det_image, det_class, det_score, det_box = pred
    categories = sorted({int(c) for c in gt_class} | {int(c) for c in det_class})
    ranges = buckets.ranges()
    ground, found = _coco_pair(truth, pred, categories, len(images))
    result = _coco_eval(ground, found, ranges)
    precision = result["precision"][..., -1]  # (T, R, K, A)

    det_gt = np.full(len(det_class), -1)
    det_iou = np.zeros(len(det_class))
    for pair, iou in result["matched"].items():
        dt_id, gt_id = (int(v) for v in pair.split("_"))
        det_gt[dt_id - 1], det_iou[dt_id - 1] = gt_id - 1, iou

    gt_area = (gt_box[:, 2] - gt_box[:, 0]) * (gt_box[:, 3] - gt_box[:, 1])

    def ap(k: int, area: int) -> tuple[float, float] | None:
        """(AP50, AP50-95) of category ``k`` in area range ``area``; None without truth."""
        ap50_95 = _mean_valid(precision[:, :, k, area])
        return None if ap50_95 is None else (_mean_valid(precision[0, :, k, area]), ap50_95)

    per_class: dict[int, ApPair] = {}
    for k, class_id in enumerate(categories):
        values = ap(k, 0)
        if values:
            boxes = int((gt_class == class_id).sum())
            per_class[class_id] = ApPair(ap50=values[0], ap50_95=values[1], boxes=boxes)

    def mean_of(members: dict[int, ApPair]) -> ApPair | None:
        if not members:
            return None
        return ApPair(
            ap50=float(np.mean([m.ap50 for m in members.values()])),
            ap50_95=float(np.mean([m.ap50_95 for m in members.values()])),
            boxes=sum(m.boxes for m in members.values()),
        )

    per_weather = {
        mode: mean
        for mode in WEATHER_OFFSETS
        if (mean := mean_of({c: v for c, v in per_class.items() if weather_mode(c) == mode}))
    }
    per_size = {}
    for a, (label, (low, high)) in enumerate(ranges.items(), start=1):
        per_class_in_range = {}
        for k, class_id in enumerate(categories):
            values = ap(k, a)
            if values:
                in_range = (gt_class == class_id) & (gt_area >= low) & (gt_area < high)
                per_class_in_range[class_id] = ApPair(
                    ap50=values[0], ap50_95=values[1], boxes=int(in_range.sum())
                )
        if (mean := mean_of(per_class_in_range)) is not None:
            per_size[label] = mean

    thresholds = {}
    for class_id in per_class:
        mine = det_class == class_id
        found = f1_threshold(
            det_score[mine], det_iou[mine] >= MATCH_IOU, int((gt_class == class_id).sum())
        )
        if found:
            thresholds[class_id] = found

    # the confusion matrix at the operating point clients will use: each class's threshold
    floor = np.array([thresholds[c].conf if c in thresholds else DEFAULT_CONF for c in det_class])
    kept = det_score >= floor
    operating = _coco_pair(
        truth, (det_image[kept], det_class[kept], det_score[kept], det_box[kept]),
        categories, len(images),
    )  # fmt: skip
    overall = mean_of(per_class) or ApPair(ap50=0.0, ap50_95=0.0, boxes=0)
    summary = EvaluationSummary(
        images=len(images),
        overall=overall,
        per_class=per_class,
        class_names={c: names.get(c, f"Class-{c}") for c in categories},
        per_weather=per_weather,
        per_size=per_size,
        size_buckets=buckets,
        thresholds=thresholds,
    )
    matches = MatchTable(
        images=list(images),
        det_image=det_image,
        det_class=det_class,
        det_score=det_score,
        det_box=det_box,
        det_iou=det_iou,
        det_gt=det_gt,
        gt_image=gt_image,
        gt_class=gt_class,
        gt_box=gt_box,
    )
    return Scores(summary, matches, precision, categories, confusion_matrix(*operating))
