from __future__ import annotations

import cv2
import numpy as np
import pytest

from leukoscope.config import PreprocessConfig
from leukoscope.preprocess import apply_clahe, preprocess_image

from .helpers import cell_image


def _low_contrast(size: int = 64) -> np.ndarray:
    """A dull, slightly coloured gradient: CLAHE has contrast to gain, colours stay in gamut."""
    ramp = np.linspace(100, 140, size)[None, :] + np.linspace(0, 10, size)[:, None]
    rgb = np.stack([ramp + 10, ramp, ramp + 5], axis=2)
    return rgb.round().astype(np.uint8)


def test_clahe_raises_contrast_of_lightness_only():
    img = _low_contrast()
    out = apply_clahe(img, clip=4.0, grid=2)
    lab_in = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).astype(float)
    lab_out = cv2.cvtColor(out, cv2.COLOR_RGB2LAB).astype(float)
    assert lab_out[:, :, 0].std() > 1.5 * lab_in[:, :, 0].std()
    assert np.abs(lab_out[:, :, 1:] - lab_in[:, :, 1:]).mean() < 0.5  # hue kept (up to rounding)


def test_clahe_as_preprocessing_is_deterministic():
    img = cell_image(size=(96, 96), center=(48, 48), axes=(30, 22))
    img = (img * 0.5).astype(np.uint8)
    cfg = PreprocessConfig(image_size=64, clahe=True, clahe_clip=3.0, clahe_grid=4)
    a, b = preprocess_image(img, cfg), preprocess_image(img, cfg)
    np.testing.assert_array_equal(a, b)
    plain = preprocess_image(img, PreprocessConfig(image_size=64))
    assert not np.array_equal(a, plain)
    np.testing.assert_array_equal(a, apply_clahe(plain, 3.0, 4))


def test_clahe_rejects_non_rgb():
    with pytest.raises(ValueError, match="uint8"):
        apply_clahe(np.zeros((8, 8), np.uint8))
