"""A preview grid of training images with their boxes and class names drawn (PNG bytes)."""

from __future__ import annotations

from pathlib import Path

TILE = 256


def _bgr(color: str) -> tuple[int, int, int]:
    return int(color[5:7], 16), int(color[3:5], 16), int(color[1:3], 16)


def _tile(image_path: Path, label_path: Path, names: dict[int, str], colors) -> object:
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
    for line in label_path.read_text().splitlines():
        fields = line.split()
        if len(fields) != 5:
            continue
        class_id = int(fields[0])
        cx, cy, w, h = (float(v) for v in fields[1:])
        x0, y0 = round((cx - w / 2) * new_w), round((cy - h / 2) * new_h)
        x1, y1 = round((cx + w / 2) * new_w), round((cy + h / 2) * new_h)
        color = colors(class_id)
        # A dark outline keeps the box visible on an object of its own colour.
        cv2.rectangle(tile, (x0, y0), (x1, y1), (0, 0, 0), 3)
        cv2.rectangle(tile, (x0, y0), (x1, y1), color, 1)
        text = names.get(class_id, f"Class-{class_id}")
        cv2.putText(tile, text, (x0 + 2, max(10, y0 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, color, 1)
    return tile


def preview_grid_png(
    samples: list[tuple[Path, Path]],
    names: dict[int, str],
    color_of: dict[int, str],
    columns: int = 3,
) -> bytes | None:
    """Grid of ``(image, label)`` samples; None when there is nothing to show."""
    if not samples:
        return None
    import cv2
    import numpy as np

    def colors(class_id: int) -> tuple[int, int, int]:
        return _bgr(color_of.get(class_id, "#FFFFFF"))

    tiles = [_tile(Path(image), Path(label), names, colors) for image, label in samples]
    rows = -(-len(tiles) // columns)
    tiles += [np.zeros_like(tiles[0])] * (rows * columns - len(tiles))
    grid = np.vstack([np.hstack(tiles[r * columns : (r + 1) * columns]) for r in range(rows)])
    ok, png = cv2.imencode(".png", grid)
    return png.tobytes() if ok else None
