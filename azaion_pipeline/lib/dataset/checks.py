"""The dataset checks, incremental: each reads only what arrived since it last passed.

A check keeps a watermark (the last catalogue run it verified) and advances it only when
it passes, so a failure is seen again on every later run until it is fixed. Nothing that
passed can change afterwards: store files are content-addressed and splits never move.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from azaion_pipeline.lib.classes import NUM_MODEL_CLASSES
from azaion_pipeline.lib.dataset.annotations import AnnotationError, parse_label
from azaion_pipeline.lib.dataset.catalogue import Catalogue
from azaion_pipeline.lib.dataset.split import cross_split_twins

MODEL_CLASS_IDS = frozenset(range(NUM_MODEL_CLASSES))
LABELS_MARK = "checked_labels_run"
TWINS_MARK = "checked_twins_run"


@dataclass
class CheckOutcome:
    checked: int  # items this run looked at
    problems: int
    examples: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.problems == 0


def _advance(catalogue: Catalogue, mark: str, outcome: CheckOutcome, run: int) -> CheckOutcome:
    if outcome.passed:
        with catalogue.transaction():
            catalogue.set_meta(mark, str(run))
    return outcome


def labels_in_range(catalogue: Catalogue) -> CheckOutcome:
    """Every output label written since the last pass has class ids < 80 and coordinates
    in [0, 1] (read from the catalogue, which holds each label's text)."""
    run, since = catalogue.current_run(), int(catalogue.get_meta(LABELS_MARK, "0"))
    checked, examples, problems = 0, [], 0
    for label, text in catalogue.labels_since(since):
        checked += 1
        try:
            parse_label(text, MODEL_CLASS_IDS)
        except AnnotationError as exc:
            problems += 1
            if len(examples) < 10:
                examples.append(f"{label}: {exc}")
    return _advance(catalogue, LABELS_MARK, CheckOutcome(checked, problems, examples), run)


def no_near_twins_across_splits(catalogue: Catalogue, max_distance: int) -> CheckOutcome:
    """Zero near-duplicate pairs between train and valid/test, among new assignments.

    A change of ``max_distance`` starts over from the beginning."""
    run = catalogue.current_run()
    mark = f"{TWINS_MARK}:{max_distance}"
    since = int(catalogue.get_meta(mark, "0"))
    count, examples = cross_split_twins(catalogue, since, max_distance)
    checked = len(catalogue.assigned_since(since))
    return _advance(catalogue, mark, CheckOutcome(checked, count, examples), run)
