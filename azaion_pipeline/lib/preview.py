"""Image grids with boxes drawn (PNG bytes): training samples with their labels, and the
evaluation's flip report with both models' detections."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TILE = 256


@dataclass(frozen=True)
class DrawnBox:
    box: tuple[float, float, float, float]  # normalised x0 y0 x1 y1
    color: str  # "#RRGGBB"
    text: str = ""


def _bgr(color: str) -> tuple[int, int, int]:
    return int(color[5:7], 16), int(color[3:5], 16), int(color[1:3], 16)


def boxes_tile(image_path: Path, boxes: list[DrawnBox]) -> object:
    """One TILE×TILE image, scaled to fit, with ``boxes`` drawn on it."""
    import cv2
    import numpy as np

    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    tile = np.full((TILE, TILE, 3), 32, np.uint8)
    if image is None:
        cv2.putText(tile, "unreadable", (8, TILE // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 255))
        return tile
    height, width = image.shape[:2]
    scale = TILE / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    tile[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    for drawn in boxes:
        x0, y0, x1, y1 = drawn.box
        top_left = round(x0 * new_w), round(y0 * new_h)
        bottom_right = round(x1 * new_w), round(y1 * new_h)
        color = _bgr(drawn.color)
        # A dark outline keeps the box visible on an object of its own colour.
        cv2.rectangle(tile, top_left, bottom_right, (0, 0, 0), 3)
        cv2.rectangle(tile, top_left, bottom_right, color, 1)
        if drawn.text:
            anchor = (top_left[0] + 2, max(10, top_left[1] - 3))
            cv2.putText(tile, drawn.text, anchor, cv2.FONT_HERSHEY_SIMPLEX, 0.35, color, 1)
    return tile


def grid_png(tiles: list, columns: int) -> bytes | None:
    """Tiles in rows of ``columns``; None when there is nothing to show."""
    if not tiles:
        return None
    import cv2
    import numpy as np

    rows = -(-len(tiles) // columns)
    tiles = tiles + [np.zeros_like(tiles[0])] * (rows * columns - len(tiles))
    grid = np.vstack([np.hstack(tiles[r * columns : (r + 1) * columns]) for r in range(rows)])
    ok, png = cv2.imencode(".png", grid)
    return png.tobytes() if ok else None


def label_boxes_drawn(
    label_path: Path, names: dict[int, str], color_of: dict[int, str]
) -> list[DrawnBox]:
    drawn = []
    for line in label_path.read_text().splitlines():
        fields = line.split()
        if len(fields) != 5:
            continue
        class_id = int(fields[0])
        cx, cy, w, h = (float(v) for v in fields[1:])
        drawn.append(
            DrawnBox(
                (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2),
                color_of.get(class_id, "#FFFFFF"),
                names.get(class_id, f"Class-{class_id}"),
            )
        )
    return drawn


def preview_grid_png(
    samples: list[tuple[Path, Path]],
    names: dict[int, str],
    color_of: dict[int, str],
    columns: int = 3,
) -> bytes | None:
    """Grid of ``(image, label)`` samples; None when there is nothing to show."""
    tiles = [
        boxes_tile(Path(image), label_boxes_drawn(Path(label), names, color_of))
        for image, label in samples
    ]
    return grid_png(tiles, columns)
