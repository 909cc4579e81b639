"""Synthetic cells: drawn ellipses on black, like C-NMC's one-cell-on-black images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

COLOR = (190, 110, 170)  # a stained-cell purple


def cell_image(
    size: tuple[int, int] = (128, 128),
    center: tuple[int, int] = (64, 64),
    axes: tuple[int, int] = (30, 18),
    angle: float = 0.0,
    color: tuple[int, int, int] = COLOR,
) -> np.ndarray:
    """RGB uint8 image (h, w = size) with one filled ellipse; `center` is (x, y)."""
    img = np.zeros((*size, 3), np.uint8)
    cv2.ellipse(img, center, axes, angle, 0, 360, color, thickness=-1)
    cv2.circle(img, center, max(2, min(axes) // 2), (90, 40, 120), thickness=-1)  # a darker "nucleus"
    return img


def true_box(img: np.ndarray, threshold: int = 15) -> tuple[int, int, int, int]:
    """Bounding rect (x, y, w, h) of every non-black pixel: the ground truth when there is no noise."""
    return cv2.boundingRect((img.max(axis=2) > threshold).astype(np.uint8))


def write_bmp(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path
