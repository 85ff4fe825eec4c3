"""What the UI shows of an evaluation: slice tables, PR curves and the confusion matrix."""

from __future__ import annotations

import numpy as np

from azaion_pipeline.lib.evaluation.bootstrap import Interval
from azaion_pipeline.lib.evaluation.scoring import ApPair, EvaluationSummary, Scores
from azaion_pipeline.lib.plots import figure_png


def _cell(pair: ApPair | None) -> str:
    return "–" if pair is None else f"{pair.ap50:.4f} / {pair.ap50_95:.4f}"


def slices_markdown(
    challenger: EvaluationSummary,
    champion: EvaluationSummary | None,
    intervals: dict[str, Interval] | None = None,
) -> str:
    """AP50 / AP50-95 per slice for both models, with the Δ interval where there is one."""
    rows = [
        "| slice | boxes | challenger AP50 / AP50-95 | champion AP50 / AP50-95 | Δ AP50-95 interval |",
        "|---|---|---|---|---|",
    ]
    slices: list[tuple[str, str, ApPair | None, ApPair | None]] = [
        ("overall", "overall", challenger.overall, champion.overall if champion else None)
    ]
    for group, prefix in (("per_weather", ""), ("per_size", "size "), ("per_class", "class ")):
        mine, theirs = getattr(challenger, group), getattr(champion, group) if champion else {}
        for key in sorted(set(mine) | set(theirs), key=str):
            label = challenger.class_label(key) if group == "per_class" else str(key)
            slices.append((str(key), prefix + label, mine.get(key), theirs.get(key)))
    for key, label, mine, theirs in slices:
        interval = (intervals or {}).get(key)
        span = (
            f"{interval.delta:+.4f} [{interval.low:+.4f}, {interval.high:+.4f}]" if interval else ""
        )
        boxes = (mine or theirs).boxes if (mine or theirs) else 0
        rows.append(f"| {label} | {boxes} | {_cell(mine)} | {_cell(theirs)} | {span} |")
    return "\n".join(rows)


def thresholds_markdown(summary: EvaluationSummary) -> str:
    rows = ["| class | conf | F1 | precision | recall |", "|---|---|---|---|---|"]
    for class_id, t in sorted(summary.thresholds.items()):
        rows.append(
            f"| {summary.class_label(class_id)} | {t.conf:.3f} | {t.f1:.3f} | "
            f"{t.precision:.3f} | {t.recall:.3f} |"
        )
    return "\n".join(rows)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pr_curves_png(scores: Scores) -> bytes:
    """Precision-recall at IoU 0.5 per class with test boxes (faster-coco-eval's curves)."""
    plt = _pyplot()
    recall = np.linspace(0.0, 1.0, scores.precision.shape[1])
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for k, class_id in enumerate(scores.categories):
        curve = scores.precision[0, :, k, 0]
        if (curve > -1).any():
            ap50 = scores.summary.per_class[class_id].ap50
            label = f"{scores.summary.class_label(class_id)} {ap50:.3f}"
            ax.plot(recall, np.clip(curve, 0, None), linewidth=1, label=label)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title(f"PR at IoU 0.5, AP50 {scores.summary.overall.ap50:.3f}")
    ax.legend(fontsize=6, loc="lower left", ncol=2)
    return figure_png(fig)


def confusion_png(scores: Scores) -> bytes:
    """Rows: true class; columns: predicted class, then false positives and misses."""
    plt = _pyplot()
    labels = [scores.summary.class_label(c) for c in scores.categories]
    matrix = scores.confusion
    fig, ax = plt.subplots(figsize=(1.5 + 0.45 * matrix.shape[1], 1.2 + 0.45 * matrix.shape[0]))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(matrix.shape[1]), [*labels, "false pos.", "missed"], rotation=70)
    ax.set_yticks(range(matrix.shape[0]), labels)
    ax.tick_params(labelsize=7)
    for (row, column), value in np.ndenumerate(matrix):
        if value:
            ax.text(column, row, f"{value:.0f}", ha="center", va="center", fontsize=6)
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title("confusion at the per-class thresholds, IoU 0.5")
    return figure_png(fig)
