"""Champion vs challenger on the same test images: Δ intervals and the flip report.

A flip is where the two models disagree at the operating point each would ship with (its own
per-class thresholds): a ground-truth box the champion found and the challenger misses, or a
challenger false positive the champion did not make.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from azaion_pipeline.lib.evaluation.bootstrap import Interval, paired_bootstrap
from azaion_pipeline.lib.evaluation.evaluator import TestSplit
from azaion_pipeline.lib.evaluation.scoring import DEFAULT_CONF, MATCH_IOU, Scores
from azaion_pipeline.lib.parity import box_iou
from azaion_pipeline.lib.preview import DrawnBox, boxes_tile, grid_png

CHAMPION_COLOR = "#3D8BFF"  # blue
CHALLENGER_COLOR = "#FF8C00"  # orange
TRUTH_COLOR = "#FFFFFF"


class FlipImage(BaseModel):
    model_config = ConfigDict(frozen=True)

    image: str
    newly_missed: int
    new_false_positives: int


class Comparison(BaseModel):
    model_config = ConfigDict(frozen=True)

    intervals: dict[str, Interval]  # "overall" and each weather mode with test boxes
    resamples: int
    seed: int
    newly_missed: int
    new_false_positives: int
    flips: list[FlipImage]  # every image with a flip, most flips first


def _operating(scores: Scores) -> np.ndarray:
    """Which detections pass their class's shipped threshold."""
    thresholds = scores.summary.thresholds
    m = scores.matches
    floor = np.array([thresholds[c].conf if c in thresholds else DEFAULT_CONF for c in m.det_class])
    return m.det_score >= floor


def _flips(champion: Scores, challenger: Scores) -> list[FlipImage]:
    old, new = champion.matches, challenger.matches
    old_kept, new_kept = _operating(champion), _operating(challenger)
    old_found = set(old.det_gt[old_kept & (old.det_gt >= 0)].tolist())
    new_found = set(new.det_gt[new_kept & (new.det_gt >= 0)].tolist())
    missed = np.zeros(len(old.images), dtype=int)
    for gt in old_found - new_found:
        missed[old.gt_image[gt]] += 1
    old_fp = old_kept & (old.det_gt < 0)
    new_fp = np.flatnonzero(new_kept & (new.det_gt < 0))
    false_positives = np.zeros(len(old.images), dtype=int)
    for image in np.unique(new.det_image[new_fp]):
        mine = new_fp[new.det_image[new_fp] == image]
        theirs = np.flatnonzero(old_fp & (old.det_image == image))
        overlap = box_iou(new.det_box[mine], old.det_box[theirs]) >= MATCH_IOU
        same_class = new.det_class[mine][:, None] == old.det_class[theirs][None, :]
        false_positives[image] = int((~(overlap & same_class).any(axis=1)).sum())
    order = np.lexsort((-false_positives, -missed, -(missed + false_positives)))
    return [
        FlipImage(
            image=old.images[i],
            newly_missed=int(missed[i]),
            new_false_positives=int(false_positives[i]),
        )
        for i in order
        if missed[i] + false_positives[i] > 0
    ]


def compare(
    champion: Scores, challenger: Scores, resamples: int, confidence: float, seed: int
) -> Comparison:
    intervals = paired_bootstrap(champion.matches, challenger.matches, resamples, confidence, seed)
    flips = _flips(champion, challenger)
    return Comparison(
        intervals=intervals,
        resamples=resamples,
        seed=seed,
        newly_missed=sum(f.newly_missed for f in flips),
        new_false_positives=sum(f.new_false_positives for f in flips),
        flips=flips,
    )


def flip_grid_png(
    comparison: Comparison, split: TestSplit, champion: Scores, challenger: Scores, limit: int
) -> bytes | None:
    """The flipped images: truth in white, champion in blue, challenger in orange."""
    index = {name: i for i, name in enumerate(split.names)}
    tiles = []
    for flip in comparison.flips[:limit]:
        i = index[flip.image]
        truth = split.truths[i]
        drawn = [DrawnBox(tuple(b), TRUTH_COLOR) for b in truth.boxes]
        for scores, color, tag in (
            (champion, CHAMPION_COLOR, "old"),
            (challenger, CHALLENGER_COLOR, "new"),
        ):
            m = scores.matches
            shown = np.flatnonzero(_operating(scores) & (m.det_image == i))
            drawn += [
                DrawnBox(
                    tuple(m.det_box[j]),
                    color,
                    f"{tag} {scores.summary.class_label(int(m.det_class[j]))}",
                )
                for j in shown
            ]
        tiles.append(boxes_tile(split.images[i], drawn))
    return grid_png(tiles, columns=4)
