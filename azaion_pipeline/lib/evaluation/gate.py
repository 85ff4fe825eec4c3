"""Gate v2: may the challenger replace the champion?

It passes only when (1) the lower bound of the ΔAP50-95 interval is ≥ −tolerance, (2) no
weather mode loses more than ``mode_delta`` AP50-95, (3) no class with at least
``class_min_boxes`` test boxes loses more than ``class_delta``, and (4) the challenger reaches
the absolute ``floor``. Without a champion only the floor applies. Thresholds have no
defaults here: the gate's config owns them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from azaion_pipeline.lib.evaluation.bootstrap import OVERALL
from azaion_pipeline.lib.evaluation.comparison import Comparison
from azaion_pipeline.lib.evaluation.scoring import EvaluationSummary


class GateVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    passed: bool
    failed: list[str]  # what failed: "floor", "overall", a weather mode, "class <name>"
    reasons: list[str]  # one sentence per failure, or what passed

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def judge(
    challenger: EvaluationSummary,
    champion: EvaluationSummary | None,
    comparison: Comparison | None,
    *,
    tolerance: float,
    mode_delta: float,
    class_delta: float,
    class_min_boxes: int,
    floor: float,
) -> GateVerdict:
    failed: list[str] = []
    reasons: list[str] = []

    def fail(what: str, why: str) -> None:
        failed.append(what)
        reasons.append(why)

    score = challenger.overall.ap50_95
    if score < floor:
        fail("floor", f"AP50-95 {score:.4f} is below the floor {floor:.4f}")
    if champion is None or comparison is None:
        return GateVerdict(
            passed=not failed,
            failed=failed,
            reasons=reasons or [f"no champion yet; AP50-95 {score:.4f} reaches the floor"],
        )

    overall = comparison.intervals[OVERALL]
    if overall.low < -tolerance:
        fail(
            OVERALL,
            f"ΔAP50-95 {overall.delta:+.4f}, {overall.confidence:.0%} interval "
            f"[{overall.low:+.4f}, {overall.high:+.4f}] reaches below −{tolerance:.4f}",
        )
    for mode, before in champion.per_weather.items():
        after = challenger.per_weather.get(mode)
        delta = (after.ap50_95 if after else 0.0) - before.ap50_95
        if delta < -mode_delta:
            fail(
                mode,
                f"{mode}: AP50-95 {before.ap50_95 + delta:.4f} vs champion {before.ap50_95:.4f} "
                f"(Δ {delta:+.4f}, more than {mode_delta:.4f} worse)",
            )
    for class_id, before in sorted(champion.per_class.items()):
        if before.boxes < class_min_boxes:
            continue
        after = challenger.per_class.get(class_id)
        delta = (after.ap50_95 if after else 0.0) - before.ap50_95
        if delta < -class_delta:
            name = champion.class_label(class_id)
            fail(
                f"class {name}",
                f"class {name} (id {class_id}, {before.boxes} test boxes): AP50-95 "
                f"{before.ap50_95 + delta:.4f} vs champion {before.ap50_95:.4f} "
                f"(Δ {delta:+.4f}, more than {class_delta:.4f} worse)",
            )
    if not failed:
        reasons.append(
            f"ΔAP50-95 {overall.delta:+.4f}, {overall.confidence:.0%} interval "
            f"[{overall.low:+.4f}, {overall.high:+.4f}] ≥ −{tolerance:.4f}; no weather mode "
            f"worse by > {mode_delta:.4f}; no class with ≥ {class_min_boxes} boxes worse by "
            f"> {class_delta:.4f}; AP50-95 {score:.4f} ≥ floor {floor:.4f}"
        )
    return GateVerdict(passed=not failed, failed=failed, reasons=reasons)
