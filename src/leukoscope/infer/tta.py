"""Test-time augmentation: predict on flipped / rotated copies of a batch and average the probabilities.

A cell has no preferred orientation, so the dihedral views are equally valid inputs; averaging them
smooths out orientation-specific errors. Used by `predict`, serving and evaluation alike.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from leukoscope.errors import ConfigError

TTA_MODES = ("none", "flips", "d8")

# (k quarter turns, flip left-right first)
_VIEWS: dict[str, list[tuple[int, bool]]] = {
    "none": [(0, False)],
    # identity, horizontal flip, vertical flip (= rot180 o hflip)
    "flips": [(0, False), (0, True), (2, True)],
    "d8": [(k, flip) for flip in (False, True) for k in range(4)],
}


def check_mode(mode: str) -> str:
    if mode not in _VIEWS:
        raise ConfigError(f"unknown TTA mode {mode!r}", hint=f"choose one of: {', '.join(TTA_MODES)}")
    return mode


def tta_views(batch: np.ndarray, mode: str, *, channels_last: bool = True) -> list[np.ndarray]:
    """The views of `batch` for `mode` (the identity first).

    Batches are NHWC (preprocessed uint8 images, what every predictor takes) unless `channels_last` is
    False (NCHW). Quarter turns swap height and width, so `d8` needs square images (which preprocessing
    always produces).
    """
    h_axis, w_axis = (-3, -2) if channels_last else (-2, -1)
    return [_view(np.asarray(batch), k, flip, h_axis, w_axis) for k, flip in _VIEWS[check_mode(mode)]]


def _view(batch: np.ndarray, k: int, flip: bool, h_axis: int, w_axis: int) -> np.ndarray:
    out = np.flip(batch, axis=w_axis) if flip else batch
    out = np.rot90(out, k=k, axes=(h_axis, w_axis)) if k else out
    return np.ascontiguousarray(out)


def tta_predict(
    predict: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, mode: str = "none"
) -> np.ndarray:
    """Average of `predict(view)` over the views: probabilities stay probabilities (rows sum to 1)."""
    views = tta_views(batch, mode)
    total = np.asarray(predict(views[0]), dtype=np.float64)
    for view in views[1:]:
        total = total + np.asarray(predict(view), dtype=np.float64)
    return (total / len(views)).astype(np.float32)
