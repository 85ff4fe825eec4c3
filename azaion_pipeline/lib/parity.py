"""Does the exported ONNX still detect what the PyTorch weights detect?

Both run on the same images: PyTorch through ultralytics, ONNX through onnxruntime with
our own pre/post-processing (what an Azaion client does). Both detection sets are scored
against the ground truth with the same mAP code, and each box of one side must have a
same-class box on the other side with IoU ≥ ``min_iou``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from azaion_pipeline.lib.evaluate import split_images
from azaion_pipeline.lib.layout import LABELS

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # (n, 4) xyxy in original image pixels
    scores: np.ndarray  # (n,)
    classes: np.ndarray  # (n,) int


@dataclass(frozen=True)
class ParityReport:
    passed: bool
    reason: str
    images: int
    pytorch_map50_95: float
    onnx_map50_95: float
    pytorch_boxes: int
    onnx_boxes: int
    matched_fraction: float
    mean_matched_iou: float


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes, shape (len(a), len(b))."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).prod(1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def label_boxes(label: Path) -> Detections:
    """A YOLO label file as normalised xyxy boxes (an absent or empty file: no boxes)."""
    rows = (
        np.loadtxt(label, ndmin=2) if label.exists() and label.stat().st_size else np.zeros((0, 5))
    )
    cx, cy, w, h = (rows[:, i] for i in range(1, 5))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return Detections(boxes, np.ones(len(rows)), rows[:, 0].astype(int))


def label_of(image: Path) -> Path:
    """…/images/x.jpg → …/labels/x.txt"""
    return image.parent.parent / LABELS / f"{image.stem}.txt"


def ground_truth(image: Path, shape: tuple[int, int]) -> Detections:
    """YOLO label of ``image`` in pixel xyxy."""
    truth = label_boxes(label_of(image))
    height, width = shape
    return Detections(truth.boxes * [width, height, width, height], truth.scores, truth.classes)


def correct_matrix(pred: Detections, truth: Detections) -> np.ndarray:
    """(n_pred, 10) true-positive flags at IoU 0.5…0.95, greedy by confidence (as ultralytics)."""
    correct = np.zeros((len(pred.scores), len(IOU_THRESHOLDS)), dtype=bool)
    if len(pred.scores) == 0 or len(truth.classes) == 0:
        return correct
    iou = box_iou(truth.boxes, pred.boxes) * (truth.classes[:, None] == pred.classes[None, :])
    claimed = np.zeros((len(truth.classes), len(IOU_THRESHOLDS)), dtype=bool)
    for j in np.argsort(-pred.scores):
        available = np.where(claimed, 0.0, iou[:, j, None])
        best = available.argmax(0)
        correct[j] = available[best, range(len(IOU_THRESHOLDS))] >= IOU_THRESHOLDS
        claimed[best, range(len(IOU_THRESHOLDS))] |= correct[j]
    return correct


def map50_95(predictions: list[Detections], truths: list[Detections]) -> float:
    from ultralytics.utils.metrics import ap_per_class

    target_classes = np.concatenate([t.classes for t in truths]) if truths else np.zeros(0)
    if len(target_classes) == 0:
        return 0.0
    tp = np.concatenate([correct_matrix(p, t) for p, t in zip(predictions, truths, strict=True)])
    if len(tp) == 0:
        return 0.0
    scores = np.concatenate([p.scores for p in predictions])
    classes = np.concatenate([p.classes for p in predictions])
    ap = ap_per_class(tp, scores, classes, target_classes)[5]
    return float(ap.mean()) if ap.size else 0.0


def match_boxes(a: Detections, b: Detections, min_iou: float) -> tuple[int, list[float]]:
    """How many boxes of ``a`` have a same-class box in ``b`` with IoU ≥ min_iou (+ those IoUs)."""
    if len(a.scores) == 0:
        return 0, []
    iou = box_iou(a.boxes, b.boxes) * (a.classes[:, None] == b.classes[None, :])
    best = iou.max(1) if iou.shape[1] else np.zeros(len(a.scores))
    matched = best[best >= min_iou]
    return len(matched), matched.tolist()


def structure_problems(session, names: dict[int, str], imgsz: int, max_batch: int) -> list[str]:
    """The file's own metadata must describe this model: class names and input size."""
    meta = session.get_modelmeta().custom_metadata_map
    problems = []
    if meta.get("names") != str(names):
        problems.append("class names in the ONNX metadata differ from the PyTorch model's")
    if meta.get("imgsz") != str([imgsz, imgsz]):
        problems.append(f"ONNX metadata imgsz {meta.get('imgsz')} is not {imgsz}")
    if int(meta.get("max_batch", max_batch)) < max_batch:
        problems.append(f"ONNX max_batch {meta.get('max_batch')} < {max_batch}")
    return problems


def onnx_detections(session, images: list[np.ndarray], imgsz: int, batch: int) -> list[Detections]:
    """Run the ONNX graph (NMS inside: rows of x1 y1 x2 y2 score class) in batches."""
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils.ops import scale_boxes

    input_name = session.get_inputs()[0].name
    letterbox = LetterBox(new_shape=(imgsz, imgsz), auto=False)
    results: list[Detections] = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        tensors = [letterbox(image=im)[..., ::-1].transpose(2, 0, 1) for im in chunk]
        blob = np.ascontiguousarray(np.stack(tensors), dtype=np.float32) / 255.0
        (output,) = session.run(None, {input_name: blob})
        for rows, image in zip(output, chunk, strict=True):
            rows = rows[rows[:, 4] > 0]  # NMS pads to max_det with zero rows
            boxes = scale_boxes((imgsz, imgsz), rows[:, :4].copy(), image.shape[:2])
            results.append(Detections(np.asarray(boxes), rows[:, 4], rows[:, 5].astype(int)))
    return results


def pytorch_detections(
    model, images: list[np.ndarray], imgsz: int, conf: float, iou: float
) -> list[Detections]:
    found = []
    for image in images:
        (result,) = model.predict(
            image, imgsz=imgsz, conf=conf, iou=iou, device="cpu", verbose=False
        )
        box = result.boxes
        found.append(Detections(box.xyxy.numpy(), box.conf.numpy(), box.cls.numpy().astype(int)))
    return found


def parity_images(data_yaml: Path, max_images: int) -> list[Path]:
    paths = split_images(data_yaml, "valid") + split_images(data_yaml, "test")
    return paths[:max_images]


class ParityThresholds(BaseModel):
    """How closely onnxruntime must agree with PyTorch."""

    map_tolerance: float = Field(default=0.01, ge=0.0, description="Allowed mAP50-95 gap.")
    min_iou: float = Field(default=0.9, gt=0.0, le=1.0, description="IoU of a matched box pair.")
    min_matched: float = Field(default=0.95, ge=0.0, le=1.0, description="Share of boxes matched.")
    max_images: int = Field(default=200, ge=1, description="valid+test images compared.")


def check_parity(
    onnx_path: Path,
    weights: Path,
    data_yaml: Path,
    imgsz: int,
    conf: float,
    iou: float,
    batch: int,
    thresholds: ParityThresholds,
) -> ParityReport:
    """Compare ONNX and PyTorch on the valid+test images; never raises for a bad export."""
    import cv2
    import onnxruntime as ort
    from ultralytics import YOLO

    map_tolerance, min_iou = thresholds.map_tolerance, thresholds.min_iou
    min_matched = thresholds.min_matched
    paths = parity_images(Path(data_yaml), thresholds.max_images)
    if not paths:
        return ParityReport(False, f"no valid/test images under {data_yaml}", 0, 0, 0, 0, 0, 0, 0)
    images = [cv2.imread(str(p)) for p in paths]
    truths = [ground_truth(p, im.shape[:2]) for p, im in zip(paths, images, strict=True)]
    model = YOLO(str(weights))
    torch_found = pytorch_detections(model, images, imgsz, conf, iou)
    try:
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        problems = structure_problems(session, model.names, imgsz, batch)
        # the largest batch the file promises must run, not just the sizes the images give
        onnx_detections(session, [images[0]] * batch, imgsz, batch)
        onnx_found = onnx_detections(session, images, imgsz, batch)
    except Exception as exc:  # a corrupt or incompatible file is a failed check, not a crash
        reason = f"onnxruntime could not run {onnx_path}: {type(exc).__name__}: {exc}"
        return ParityReport(False, reason[:500], len(paths), 0, 0, 0, 0, 0, 0)

    torch_map = map50_95(torch_found, truths)
    onnx_map = map50_95(onnx_found, truths)
    torch_boxes = sum(len(d.scores) for d in torch_found)
    onnx_boxes = sum(len(d.scores) for d in onnx_found)
    # both directions: boxes the export lost and boxes it invented
    forward = [match_boxes(t, o, min_iou) for t, o in zip(torch_found, onnx_found, strict=True)]
    backward = [match_boxes(o, t, min_iou) for t, o in zip(torch_found, onnx_found, strict=True)]
    ious = [v for _, values in forward for v in values]
    fractions = [
        sum(n for n, _ in pairs) / total if total else 1.0
        for pairs, total in ((forward, torch_boxes), (backward, onnx_boxes))
    ]
    matched = min(fractions)
    if abs(torch_map - onnx_map) > map_tolerance:
        problems.append(
            f"mAP50-95 differs by {abs(torch_map - onnx_map):.4f} (> {map_tolerance}):"
            f" PyTorch {torch_map:.4f}, ONNX {onnx_map:.4f}"
        )
    if matched < min_matched:
        problems.append(
            f"only {matched:.1%} of boxes have a same-class partner with IoU ≥ {min_iou}"
            f" (need {min_matched:.0%}; PyTorch {torch_boxes} boxes, ONNX {onnx_boxes})"
        )
    reason = "; ".join(problems) or (
        f"ONNX agrees with PyTorch on {len(paths)} images: mAP50-95 {onnx_map:.4f} vs "
        f"{torch_map:.4f}, {matched:.1%} of {torch_boxes} boxes matched"
    )
    if not problems and torch_boxes == 0:
        # an untrained model detects nothing above the in-graph threshold: say what was not shown
        reason += f" (no box scored ≥ {conf}, so box agreement was not exercised)"
    return ParityReport(
        passed=not problems,
        reason=reason,
        images=len(paths),
        pytorch_map50_95=torch_map,
        onnx_map50_95=onnx_map,
        pytorch_boxes=torch_boxes,
        onnx_boxes=onnx_boxes,
        matched_fraction=matched,
        mean_matched_iou=float(np.mean(ious)) if ious else 0.0,
    )
