"""Two of Azaion's albumentations transforms, re-expressed to cost fewer passes over the pixels.

Same parameters, probabilities and box maths as the stock transforms; only how the pixels
are computed changes. Imported lazily by ``augment.build_transform`` (albumentations and
cv2 are heavy imports that defs modules must not pay).
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network call on import

import albumentations as A
import cv2
import numpy as np
from albumentations.augmentations.geometric import functional as fgeometric


class FlipThenAffine(A.Affine):
    """``HorizontalFlip(p=flip_probability)`` then ``Affine(p=affine_probability)``, one warp.

    A mirror is an affine map, so flip-then-warp is ONE ``warpAffine`` with the composed
    matrix instead of a flip pass plus a warp pass. Boxes still go through albumentations'
    own ``bboxes_hflip`` and ``bboxes_affine``. Build it with ``p=1``: it draws the flip and
    the affine probabilities itself, independently, as two stock transforms would.
    """

    flip_probability = 0.6
    affine_probability = 0.8

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        height, width = params["shape"][:2]
        flip = self.py_random.random() < self.flip_probability
        if self.py_random.random() < self.affine_probability:
            warp = super().get_params_dependent_on_data(params, data)
        else:
            warp = {"matrix": None, "bbox_matrix": None, "output_shape": (height, width)}
        if flip and warp["matrix"] is not None:
            # Pixel x -> width - 1 - x: cv2.flip's map on pixel centres.
            mirror = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
            warp["matrix"] = warp["matrix"] @ mirror
        return {**warp, "flip": flip}

    def apply(self, img, matrix, output_shape, flip: bool, **params):
        if matrix is not None:
            return super().apply(img, matrix=matrix, output_shape=output_shape, **params)
        return cv2.flip(img, 1) if flip else img

    def apply_to_bboxes(self, bboxes, bbox_matrix, output_shape, flip: bool, **params):
        if flip:
            bboxes = fgeometric.bboxes_hflip(bboxes)
        if bbox_matrix is None:
            return bboxes
        return super().apply_to_bboxes(
            bboxes, bbox_matrix=bbox_matrix, output_shape=output_shape, **params
        )


class LutHueSaturationValue(A.HueSaturationValue):
    """HueSaturationValue as one 3-channel lookup table on the HSV image.

    Albumentations' ``shift_hsv`` splits the HSV planes, shifts saturation and value through
    float additions and merges them again; a single ``cv2.LUT`` gives the same bytes (tested)
    at about a third of the cost. Grey pixels (saturation 0) stay grey, as there.
    """

    def apply(self, img, hue_shift: float, sat_shift: float, val_shift: float, **params):
        is_colour = img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] in (3, 4)
        if not is_colour or hue_shift == sat_shift == val_shift == 0:
            return super().apply(img, hue_shift, sat_shift, val_shift, **params)
        levels = np.arange(256, dtype=np.int16)
        hue = np.mod(levels + hue_shift, 180).astype(np.uint8)
        # albucore truncates the shift to an int and saturates at 0 and 255.
        saturation = np.clip(levels + int(sat_shift), 0, 255).astype(np.uint8)
        saturation[0] = 0
        value = np.clip(levels + int(val_shift), 0, 255).astype(np.uint8)
        table = np.stack([hue, saturation, value], axis=-1).reshape(256, 1, 3)
        # RGB2HSV reads the first three channels of a 4-channel image too.
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        return cv2.cvtColor(cv2.LUT(hsv, table), cv2.COLOR_HSV2RGB)
