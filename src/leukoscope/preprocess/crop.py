"""Geometric preprocessing: find the cell, crop, pad to a square, resize.

C-NMC images are one cell on black, so the cell's tight box is the largest non-black blob. Padding to a
square before resizing keeps the cell's aspect ratio (a stretched cell would change its shape features).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, width, height

_OPEN_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))


def cell_box(rgb: np.ndarray, black_threshold: int = 15) -> Box | None:
    """Tight box of the largest non-black blob, or None when the image has no foreground.

    A pixel is foreground when any channel exceeds the threshold (cells dark in one colour count);
    the 3x3 opening drops hot pixels and 1-px scratches that would otherwise stretch the box.
    """
    t = int(black_threshold)
    mask = cv2.bitwise_not(cv2.inRange(rgb, (0, 0, 0), (t, t, t)))  # 10x faster than rgb.max(axis=2)
    opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _OPEN_KERNEL)
    if opened.any():
        mask = opened  # a cell thinner than 3 px would vanish; keep the raw mask then
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[largest, :4])
    return x, y, w, h


def crop_cell(rgb: np.ndarray, black_threshold: int = 15) -> np.ndarray:
    """Crop to the cell's box; an all-black image is kept whole rather than failing."""
    box = cell_box(rgb, black_threshold)
    if box is None:
        return rgb
    x, y, w, h = box
    return rgb[y : y + h, x : x + w]


def crop_center(rgb: np.ndarray, fraction: float) -> np.ndarray:
    """Centred square of `fraction` of the shorter side: smear images have the cell of interest centred."""
    h, w = rgb.shape[:2]
    side = max(1, round(min(h, w) * fraction))
    top, left = (h - side) // 2, (w - side) // 2
    return rgb[top : top + side, left : left + side]


def pad_to_square(rgb: np.ndarray) -> np.ndarray:
    """Pad with black, centred, so resizing never distorts the aspect ratio."""
    h, w = rgb.shape[:2]
    if h == w:
        return rgb
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return cv2.copyMakeBorder(
        rgb, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=(0, 0, 0)
    )


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize a square image; INTER_AREA avoids aliasing when shrinking, cubic is sharper when growing."""
    side = rgb.shape[0]
    if side == size:
        return np.ascontiguousarray(rgb)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(rgb, (size, size), interpolation=interpolation)


# `crop: auto`: a cell on black (C-NMC) is cropped to its tight box; a cell on a smear (PBC, ALL-IDB) is
# centred by the analyser, so its centre square is kept. Decided on the image border: on black
# backgrounds nearly all of it is background.
BLACK_BORDER_SHARE = 0.9
AUTO_SAMPLE = 24


def border_black_share(rgb: np.ndarray, black_threshold: int = 15) -> float:
    """Share of the outer 5% frame (at least 2 px) whose pixels are background-black."""
    h, w = rgb.shape[:2]
    m = max(2, round(0.05 * min(h, w)))
    frame = np.concatenate(
        [
            rgb[:m].reshape(-1, 3),
            rgb[-m:].reshape(-1, 3),
            rgb[:, :m].reshape(-1, 3),
            rgb[:, -m:].reshape(-1, 3),
        ]
    )
    return float((frame.max(axis=1) <= int(black_threshold)).mean())


def choose_crop(images: list[np.ndarray], black_threshold: int = 15) -> tuple[str, str]:
    """(`cell` | `center`, why) for `crop: auto`, from a sample of the training images."""
    if not images:
        return "cell", "no readable images to look at: cell (the paper's crop)"
    shares = [border_black_share(rgb, black_threshold) for rgb in images]
    median = float(np.median(shares))
    if median >= BLACK_BORDER_SHARE:
        return (
            "cell",
            f"cells on black (median {median:.0%} of the image border is black): the tight cell crop",
        )
    return "center", (
        f"cells on a background (median {median:.0%} of the image border is black): the centre square"
    )


def sample_crop(rows: Any, black_threshold: int = 15) -> tuple[str, str]:
    """`crop: auto` resolved on training rows (`path`, optional `center_crop`): `choose_crop` on
    AUTO_SAMPLE of them spread over the table; unreadable ones are passed over. (crop, why)."""
    from leukoscope.data.images import read_image
    from leukoscope.errors import DataError

    picks = rows.iloc[np.linspace(0, len(rows) - 1, min(AUTO_SAMPLE, len(rows))).astype(int)]
    images = []
    centers = picks["center_crop"].fillna(0) if "center_crop" in picks else [0] * len(picks)
    for path, center in zip(picks["path"], centers, strict=True):
        try:
            images.append(read_image(path, center_crop=int(center)))
        except DataError:
            continue
    crop, reason = choose_crop(images, black_threshold)
    return crop, f"preprocess.crop auto: {reason}"
