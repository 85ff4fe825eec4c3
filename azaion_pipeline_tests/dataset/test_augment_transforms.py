"""The fast transforms give what the stock albumentations transforms give, boxes included."""

from __future__ import annotations

import random

import albumentations as A
import cv2
import numpy as np
import pytest
from albumentations.augmentations.pixel import functional as fpixel

from azaion_pipeline.lib.dataset.augment import AugmentSettings, augment_pending
from azaion_pipeline.lib.dataset.augment_transforms import FlipThenAffine, LutHueSaturationValue


def textured_image(height: int = 96, width: int = 128, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    image[:20, :20, :3] = 128  # grey block: saturation 0 must stay 0
    image[-10:, -10:, :3] = 0
    return image


def compose(*transforms) -> A.Compose:
    """Box handling as ``build_transform`` sets it up (YOLO, clipped, min visibility 0.01)."""
    return A.Compose(
        list(transforms),
        bbox_params=A.BboxParams(
            format="yolo", label_fields=["class_ids"], clip=True, min_visibility=0.01
        ),
        seed=0,
    )


def fixed_affine(cls, scale: float, rotate: float, shear: float = 0.0, **kwargs):
    return cls(scale=(scale, scale), rotate=(rotate, rotate), shear=(shear, shear), **kwargs)


def fused(scale: float, rotate: float, shear: float, flip: bool, affine: bool):
    transform = fixed_affine(FlipThenAffine, scale, rotate, shear, p=1.0)
    transform.flip_probability = float(flip)
    transform.affine_probability = float(affine)
    return transform


def stock(scale: float, rotate: float, shear: float, flip: bool, affine: bool):
    return [
        A.HorizontalFlip(p=float(flip)),
        fixed_affine(A.Affine, scale, rotate, shear, p=float(affine)),
    ]


@pytest.mark.parametrize(
    "shifts", [(10.7, 25.2, -13.9), (-20, -30, 20), (0.4, -0.6, 0.9), (5, 0, 0)]
)
@pytest.mark.parametrize("channels", [3, 4])
def test_lut_hsv_gives_albumentations_bytes(shifts, channels):
    image = textured_image(channels=channels)
    expected = fpixel.shift_hsv(image[..., :3].copy(), *shifts)
    got = LutHueSaturationValue(p=1).apply(image, *shifts)
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)


@pytest.mark.parametrize(
    ("scale", "rotate", "shear", "flip", "affine"),
    [
        (1.0, 0.0, 0.0, True, False),
        (1.0, 0.0, 0.0, False, False),
        (1.1, 30.0, 0.0, False, True),
        (1.1, 30.0, 0.0, True, True),
        (0.8, -35.0, 10.0, True, True),
        (1.2, 17.0, -10.0, True, True),
    ],
)
def test_one_warp_matches_flip_then_affine(scale, rotate, shear, flip, affine):
    image = textured_image(channels=4)
    boxes = np.array([[0.3, 0.4, 0.2, 0.3], [0.8, 0.7, 0.15, 0.1], [0.05, 0.5, 0.08, 0.6]])
    class_ids = [1, 2, 3]
    expected = compose(*stock(scale, rotate, shear, flip, affine))(
        image=image, bboxes=boxes, class_ids=class_ids
    )
    got = compose(fused(scale, rotate, shear, flip, affine))(
        image=image, bboxes=boxes, class_ids=class_ids
    )
    # Bilinear weights are quantised to 1/32 pixel; a mirrored grid may round a tie the
    # other way, so a pixel may differ by a level or two, never by more.
    difference = np.abs(got["image"].astype(int) - expected["image"].astype(int))
    assert difference.max() <= 2 and difference.mean() < 0.05
    assert got["class_ids"] == expected["class_ids"]
    np.testing.assert_allclose(got["bboxes"], expected["bboxes"], atol=1e-6)


# Boxes in YOLO (cx, cy, w, h) on a square image, so a quarter turn is easy to state.
@pytest.mark.parametrize(
    ("case", "scale", "rotate", "flip", "box", "expected"),
    [
        ("mirror", 1.0, 0.0, True, (0.2, 0.3, 0.2, 0.2), [(0.8, 0.3, 0.2, 0.2)]),
        ("quarter turn", 1.0, 90.0, False, (0.25, 0.5, 0.1, 0.2), [(0.5, 0.75, 0.2, 0.1)]),
        ("mirror, quarter turn", 1.0, 90.0, True, (0.25, 0.5, 0.1, 0.2), [(0.5, 0.25, 0.2, 0.1)]),
        # x 0.1..0.3 doubled about the centre is -0.3..0.1: clipped to 0..0.1.
        ("clipped", 2.0, 0.0, False, (0.2, 0.5, 0.2, 0.1), [(0.05, 0.5, 0.1, 0.2)]),
        # x 0.02..0.06 doubled is -0.46..-0.38: nothing left in the image, dropped.
        ("left the image", 2.0, 0.0, False, (0.04, 0.5, 0.04, 0.1), []),
    ],
)
def test_box_maths(case, scale, rotate, flip, box, expected):
    image = np.zeros((200, 200, 4), np.uint8)
    transform = compose(fused(scale, rotate, 0.0, flip, affine=scale != 1.0 or rotate != 0.0))
    result = transform(image=image, bboxes=np.array([box]), class_ids=[5])
    assert len(result["bboxes"]) == len(expected), case
    got = np.array(result["bboxes"]).reshape(-1, 4)
    np.testing.assert_allclose(got, np.array(expected).reshape(-1, 4), atol=0.006)


def test_flip_and_affine_are_drawn_with_azaion_probabilities():
    transform = FlipThenAffine(scale=(0.8, 1.2), rotate=(-35, 35), shear=(-10, 10), p=1.0)
    transform.py_random = random.Random(3)
    draws = [
        transform.get_params_dependent_on_data({"shape": (72, 128, 4)}, {}) for _ in range(4000)
    ]
    flips = np.mean([d["flip"] for d in draws])
    warps = np.mean([d["matrix"] is not None for d in draws])
    assert abs(flips - 0.6) < 0.03 and abs(warps - 0.8) < 0.03
    # Flip and warp are independent, as two stock transforms are.
    both = np.mean([d["flip"] and d["matrix"] is not None for d in draws])
    assert abs(both - 0.48) < 0.03


def test_variants_are_three_channel_jpegs_of_the_source_size(harness, layout):
    harness.add_samples(2, seed=8)
    catalogue, _ = harness.ingest()
    with catalogue:
        result = augment_pending(catalogue, layout.processed, AugmentSettings(variants=3), 1)
        sizes = {a.name: (a.height, a.width) for a in catalogue.iter_annotations()}
        outputs = [o for key in catalogue.settings_keys() for o in catalogue.output_files(key)]
    assert len(outputs) == 2 * 4
    for image_file, _ in outputs:
        image = cv2.imread(str(result.output_dir / "images" / image_file), cv2.IMREAD_UNCHANGED)
        stem = image_file.split(".")[0]  # {name}_{variant}.{content}.jpg or {name}.{content}.jpg
        assert image.shape == (*sizes[stem.rpartition("_")[0] or stem], 3)


@pytest.mark.parametrize(
    ("suffix", "channels", "orientation"),
    [(".jpg", 3, 1), (".jpg", 1, 1), (".jpg", 3, 6), (".png", 3, 1)],
    ids=["jpeg", "grey-jpeg", "exif-rotated-jpeg", "png"],
)
def test_decode_gives_what_cv2_imread_gives(tmp_path, suffix, channels, orientation):
    """simplejpeg's fast path and OpenCV's fallback give cv2.imread's pixels, EXIF turn included."""
    from PIL import Image

    from azaion_pipeline.lib.dataset.augment import decode_bgra

    pixels = textured_image(72, 96, channels)
    path = tmp_path / f"image{suffix}"
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation; 6: shown turned 90 degrees clockwise
    Image.fromarray(pixels.squeeze()).save(path, exif=exif, quality=90)
    expected = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2BGRA)
    decoded = decode_bgra(str(path))
    upright_shape = (96, 72, 4) if orientation == 6 else (72, 96, 4)
    assert decoded.shape == expected.shape == upright_shape
    assert np.array_equal(decoded, expected)
