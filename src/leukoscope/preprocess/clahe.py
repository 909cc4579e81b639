"""CLAHE on the lightness channel only: it evens out staining contrast without shifting the hue."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["apply_clahe"]


def apply_clahe(rgb: np.ndarray, clip: float = 2.0, grid: int = 8) -> np.ndarray:
    """CLAHE (clip limit `clip`, `grid` x `grid` tiles) on the L channel of LAB; RGB uint8 in and out."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"apply_clahe needs an H x W x 3 uint8 image, got {rgb.dtype} {rgb.shape}")
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    clahe = cv2.createCLAHE(clipLimit=float(clip), tileGridSize=(int(grid), int(grid)))
    lab[:, :, 0] = clahe.apply(np.ascontiguousarray(lab[:, :, 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
