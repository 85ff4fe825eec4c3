"""Plots as markdown: Dagster has no image metadata type, so PNGs are embedded as base64."""

from __future__ import annotations

import base64
import io
from pathlib import Path


def png_markdown(png: bytes | Path, alt: str) -> str:
    data = png.read_bytes() if isinstance(png, Path) else png
    return f"![{alt}](data:image/png;base64,{base64.b64encode(data).decode()})"


def figure_png(fig) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def bar_chart_png(counts: dict[str, int], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(list(counts), list(counts.values()))
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=70, labelsize=7)
    return figure_png(fig)
