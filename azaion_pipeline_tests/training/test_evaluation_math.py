"""The evaluator's scoring, bootstrap, flips and gate v2 on constructed predictions."""

from __future__ import annotations

import numpy as np
import pytest

from azaion_pipeline.lib.evaluation.bootstrap import class_ap_draws, paired_bootstrap
from azaion_pipeline.lib.evaluation.comparison import compare
from azaion_pipeline.lib.evaluation.gate import judge
from azaion_pipeline.lib.evaluation.scoring import Scores, score
from azaion_pipeline.lib.evaluation.slices import (
    SizeBuckets,
    ensure_size_buckets,
    record_size_buckets,
    size_bucket_edges,
    weather_mode,
)
from azaion_pipeline.lib.parity import Detections

BUCKETS = SizeBuckets(edges=(0.01, 0.04), quantiles=(1 / 3, 2 / 3), boxes=3)
NAMES = {0: "ArmorVehicle", 1: "Truck", 2: "Vehicle", 40: "ArmorVehicle(Night)"}
GATE = {"tolerance": 0.01, "mode_delta": 0.05, "class_delta": 0.1, "class_min_boxes": 20}


def scene(images: int, classes: list[int], seed: int = 1) -> list[Detections]:
    """Ground truth: 1-3 boxes per image of the given classes, sizes across the buckets."""
    rng = np.random.default_rng(seed)
    truths = []
    for _ in range(images):
        k = int(rng.integers(1, 4))
        corner = rng.uniform(0.0, 0.6, (k, 2))
        size = rng.uniform(0.05, 0.35, (k, 2))
        truths.append(
            Detections(np.column_stack([corner, corner + size]), np.ones(k), rng.choice(classes, k))
        )
    return truths


def predict(truths: list[Detections], quality: dict[int, float], seed: int) -> list[Detections]:
    """Per class, ``quality`` is the chance a box is found tightly (else loosely or missed),
    plus a few low-score false positives per image."""
    rng = np.random.default_rng(seed)
    out = []
    for truth in truths:
        boxes, scores, classes = [], [], []
        for box, cls in zip(truth.boxes, truth.classes, strict=True):
            good = rng.uniform() < quality[int(cls)]
            if not good and rng.uniform() < 0.5:
                continue  # missed
            jitter = 0.002 if good else 0.04
            boxes.append(box + rng.normal(0, jitter, 4))
            scores.append(rng.uniform(0.6, 1.0) if good else rng.uniform(0.2, 0.7))
            classes.append(cls)
        for _ in range(int(rng.integers(0, 3))):
            corner = rng.uniform(0.0, 0.7, 2)
            boxes.append(np.concatenate([corner, corner + rng.uniform(0.05, 0.3, 2)]))
            scores.append(rng.uniform(0.05, 0.5))
            classes.append(rng.choice(list(quality)))
        out.append(Detections(np.array(boxes).reshape(-1, 4), np.array(scores), np.array(classes)))
    return out


def scored(truths, predictions) -> Scores:
    return score([f"img{i}" for i in range(len(truths))], truths, predictions, NAMES, BUCKETS)


def test_weather_modes_follow_the_class_id_offsets():
    assert [weather_mode(c) for c in (0, 16, 20, 36, 40, 56)] == [
        "Norm", "Norm", "Wint", "Wint", "Night", "Night"
    ]  # fmt: skip


def test_size_buckets_are_training_quantiles_stored_with_the_dataset(tmp_path):
    # a version's split folders link to one store holding every split's files: only the
    # images train.txt lists count
    store = tmp_path / "store"
    (store / "images").mkdir(parents=True)
    (store / "labels").mkdir()
    (tmp_path / "train").mkdir()
    for sub in ("images", "labels"):
        (tmp_path / "train" / sub).symlink_to(store / sub)
    # areas 0.01, 0.04, 0.09, 0.16, 0.25, 0.36 (w = h = 0.1 … 0.6)
    train = {
        f"a{i}": f"0 0.5 0.5 {side} {side}\n"
        for i, side in enumerate((0.1, 0.2, 0.3, 0.4, 0.5, 0.6))
    }
    train["empty"] = ""
    for name, text in {**train, "test_only": "0 0.5 0.5 0.9 0.9\n"}.items():
        (store / "images" / f"{name}.jpg").write_bytes(b"")
        (store / "labels" / f"{name}.txt").write_text(text)
    (tmp_path / "train.txt").write_text("".join(f"./train/images/{n}.jpg\n" for n in train))
    data_yaml = tmp_path / "data.yaml"
    data_yaml.write_text("train: train.txt\nval: valid.txt\ntest: test.txt\nnc: 80\n")
    buckets = ensure_size_buckets(data_yaml)
    assert buckets.boxes == 6
    assert buckets.edges == pytest.approx(tuple(np.quantile([0.01, 0.04, 0.09, 0.16, 0.25, 0.36],
                                                            (1 / 3, 2 / 3))))  # fmt: skip
    # recorded once: later runs read the same edges even if the list grew
    with open(tmp_path / "train.txt", "a") as listing:
        listing.write("./train/images/test_only.jpg\n")
    assert ensure_size_buckets(data_yaml) == buckets
    # what the dataset stage records from the catalogue's label texts is the same
    assert record_size_buckets(store, train.values()) == buckets
    assert record_size_buckets(store, ["", "\n"]) is None
    with pytest.raises(ValueError, match="no training boxes"):
        size_bucket_edges(np.zeros(0))


def test_scores_per_class_mode_and_size():
    truths = [
        Detections(np.array([[0.1, 0.1, 0.15, 0.15]]), np.ones(1), np.array([0])),  # small
        Detections(np.array([[0.1, 0.1, 0.6, 0.6]]), np.ones(1), np.array([40])),  # large
    ]
    predictions = [
        Detections(np.array([[0.1, 0.1, 0.15, 0.15]]), np.array([0.9]), np.array([0])),
        Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=int)),  # Night missed
    ]
    summary = scored(truths, predictions).summary
    assert summary.per_class[0].ap50_95 == pytest.approx(1.0)
    assert summary.per_class[40].ap50_95 == 0.0
    assert summary.overall.ap50_95 == pytest.approx(0.5)
    assert summary.per_weather["Norm"].ap50_95 == pytest.approx(1.0)
    assert summary.per_weather["Night"].ap50_95 == 0.0
    assert summary.per_size["small"].ap50_95 == pytest.approx(1.0)
    assert summary.per_size["large"].ap50_95 == 0.0
    assert "medium" not in summary.per_size  # no truth of that size
    assert set(summary.thresholds) == {0}  # nothing to threshold for a class never found
    assert summary.thresholds[0].conf == pytest.approx(0.9)


def test_f1_threshold_is_the_confidence_that_maximises_f1():
    truths = [Detections(np.array([[0.1, 0.1, 0.3, 0.3]]), np.ones(1), np.array([0]))] * 4
    far = [0.6, 0.6, 0.8, 0.8]
    predictions = [  # true boxes at 0.9, 0.8, 0.3; false ones at 0.5, 0.4 (on other images)
        Detections(np.array([[0.1, 0.1, 0.3, 0.3], far]), np.array([0.9, 0.5]), np.array([0, 0])),
        Detections(np.array([[0.1, 0.1, 0.3, 0.3], far]), np.array([0.8, 0.4]), np.array([0, 0])),
        Detections(np.array([[0.1, 0.1, 0.3, 0.3]]), np.array([0.3]), np.array([0])),
        Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=int)),
    ]
    threshold = scored(truths, predictions).summary.thresholds[0]
    # at 0.8: P 1, R 0.5, F1 0.667; at 0.3: P 0.6, R 0.75, F1 0.667 (first best kept); 0.4: 0.571
    assert threshold.conf == pytest.approx(0.8)
    assert threshold.f1 == pytest.approx(2 / 3)


def test_bootstrap_reproduces_faster_coco_eval_ap_at_unit_weights():
    # COCO re-matches at each IoU threshold; the bootstrap reuses the 0.5 match, which only
    # differs where boxes of one class overlap each other
    truths = scene(300, [0, 1, 40])
    result = scored(truths, predict(truths, {0: 0.8, 1: 0.5, 40: 0.3}, seed=2))
    ids = sorted(result.summary.per_class)
    ours = class_ap_draws(result.matches, ids, np.ones((1, 300)))[0]
    library = [result.summary.per_class[c].ap50_95 for c in ids]
    assert ours == pytest.approx(library, abs=1e-3)


def test_the_interval_of_identical_predictions_is_zero():
    truths = scene(200, [0, 1, 40])
    same = scored(truths, predict(truths, {0: 0.8, 1: 0.6, 40: 0.5}, seed=3))
    intervals = paired_bootstrap(same.matches, same.matches, 1000, 0.95, seed=0)
    assert set(intervals) == {"overall", "Norm", "Night"}
    for interval in intervals.values():
        assert interval.low <= 0.0 <= interval.high and interval.delta == 0.0


def test_the_interval_is_seeded_and_brackets_the_difference():
    truths = scene(300, [0, 1])
    worse = scored(truths, predict(truths, {0: 0.5, 1: 0.5}, seed=4))
    better = scored(truths, predict(truths, {0: 0.9, 1: 0.9}, seed=5))
    first = paired_bootstrap(worse.matches, better.matches, 1000, 0.95, seed=7)
    again = paired_bootstrap(worse.matches, better.matches, 1000, 0.95, seed=7)
    assert first == again
    overall = first["overall"]
    assert 0.0 < overall.low < overall.delta < overall.high
    expected = better.summary.overall.ap50_95 - worse.summary.overall.ap50_95
    assert overall.delta == pytest.approx(expected, abs=1e-3)


def test_bootstrap_refuses_different_test_images():
    truths = scene(20, [0])
    a = scored(truths, predict(truths, {0: 0.8}, seed=1))
    b = score([f"other{i}" for i in range(20)], truths, predict(truths, {0: 0.8}, seed=1),
              NAMES, BUCKETS)  # fmt: skip
    with pytest.raises(ValueError, match="same test images"):
        paired_bootstrap(a.matches, b.matches, 1000, 0.95, seed=0)
    nothing = Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=int))
    empty = scored([nothing] * 3, predict([nothing] * 3, {0: 0.8}, seed=1))
    with pytest.raises(ValueError, match="no labelled boxes"):
        paired_bootstrap(empty.matches, empty.matches, 1000, 0.95, seed=0)


def gate(champion: Scores, challenger: Scores, **overrides):
    comparison = compare(champion, challenger, resamples=1000, confidence=0.95, seed=0)
    rules = {**GATE, "floor": 0.0, **overrides}
    return judge(challenger.summary, champion.summary, comparison, **rules), comparison


def test_better_overall_but_worse_at_night_is_refused_with_night_named():
    truths = scene(400, [0, 1, 2, 40])
    champion = scored(truths, predict(truths, {0: 0.5, 1: 0.5, 2: 0.5, 40: 0.95}, seed=8))
    challenger = scored(truths, predict(truths, {0: 0.95, 1: 0.95, 2: 0.95, 40: 0.5}, seed=9))
    verdict, comparison = gate(champion, challenger, class_delta=1.0)
    assert comparison.intervals["overall"].low > 0  # significantly better overall
    assert not verdict.passed
    assert verdict.failed == ["Night"]
    assert verdict.reason.startswith("Night: AP50-95")


def test_each_gate_condition_fails_on_its_own():
    truths = scene(400, [0, 1, 2, 40])
    base = {0: 0.8, 1: 0.8, 2: 0.8, 40: 0.8}
    champion = scored(truths, predict(truths, base, seed=10))
    same = scored(truths, predict(truths, base, seed=10))
    passed, _ = gate(champion, same)
    assert passed.passed, passed.reason

    worse = scored(truths, predict(truths, {k: 0.55 for k in base}, seed=11))
    overall, _ = gate(champion, worse, mode_delta=1.0, class_delta=1.0)
    assert overall.failed == ["overall"] and "interval" in overall.reason

    one_class = scored(truths, predict(truths, {**base, 1: 0.2}, seed=10))
    by_class, _ = gate(champion, one_class, tolerance=1.0, mode_delta=1.0)
    assert by_class.failed == ["class Truck"] and "test boxes" in by_class.reason
    # the same loss on a class with too few test boxes is not judged
    rare, _ = gate(champion, one_class, tolerance=1.0, mode_delta=1.0, class_min_boxes=10_000)
    assert rare.passed

    night = scored(truths, predict(truths, {**base, 40: 0.2}, seed=10))
    by_mode, _ = gate(champion, night, tolerance=1.0, class_delta=1.0)
    assert by_mode.failed == ["Night"]

    floor, _ = gate(champion, same, floor=0.99)
    assert floor.failed == ["floor"]


def test_without_a_champion_only_the_floor_applies():
    truths = scene(50, [0])
    first = scored(truths, predict(truths, {0: 0.9}, seed=1))
    rules = {**GATE, "floor": 0.2}
    assert judge(first.summary, None, None, **rules).passed
    assert judge(first.summary, None, None, **{**rules, "floor": 0.99}).failed == ["floor"]


def test_flips_name_newly_missed_boxes_and_new_false_positives():
    truths = [Detections(np.array([[0.1, 0.1, 0.4, 0.4]]), np.ones(1), np.array([0]))] * 3
    hit = Detections(np.array([[0.1, 0.1, 0.4, 0.4]]), np.array([0.9]), np.array([0]))
    nothing = Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=int))
    ghost = Detections(
        np.array([[0.1, 0.1, 0.4, 0.4], [0.6, 0.6, 0.9, 0.9]]), np.array([0.9, 0.95]),
        np.array([0, 0]),
    )  # fmt: skip
    champion = scored(truths, [hit, hit, hit])
    challenger = scored(truths, [hit, nothing, ghost])
    comparison = compare(champion, challenger, resamples=1000, confidence=0.95, seed=0)
    assert comparison.newly_missed == 1 and comparison.new_false_positives == 1
    assert [(f.image, f.newly_missed, f.new_false_positives) for f in comparison.flips] == [
        ("img1", 1, 0), ("img2", 0, 1)
    ]  # fmt: skip
