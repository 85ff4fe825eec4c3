"""Class histograms as markdown (a table plus an embedded bar chart) for asset metadata."""

from __future__ import annotations

from collections.abc import Mapping

from azaion_pipeline.lib.plots import bar_chart_png, png_markdown


def class_table(counts: Mapping[int, int], names: dict[int, str]) -> str:
    rows = [
        f"| {class_id} | {names.get(class_id, f'Class-{class_id}')} | {count} |"
        for class_id, count in sorted(counts.items())
    ]
    return "\n".join(["| id | class | boxes |", "|---:|---|---:|", *rows])


def class_histogram_markdown(counts: Mapping[int, int], names: dict[int, str], title: str) -> str:
    """Table and chart of boxes per class; "no boxes" when there are none."""
    if not counts:
        return f"**{title}**: no boxes"
    labelled = {names.get(c, f"Class-{c}"): n for c, n in sorted(counts.items())}
    chart = png_markdown(bar_chart_png(labelled, title), title)
    return f"**{title}**\n\n{class_table(counts, names)}\n\n{chart}"
