"""Random augmentation in NumPy + OpenCV: flips, rotation (black fill, like the background) and CLAHE.

Framework-free so the same code augments offline (the workflow's `augment` stage writes the paper's
20,050 samples) and online (inside tf.data, in parallel threads: OpenCV releases the GIL). Every draw
comes from the `numpy.random.Generator` passed in, so a sample's augmentation is a function of its seed
alone, whatever thread or process runs it: resumed and uninterrupted runs see the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from leukoscope.config import AugmentConfig
from leukoscope.errors import ConfigError
from leukoscope.preprocess.clahe import apply_clahe

RANDOM_CLAHE_CLIP = (1.0, 4.0)  # clip-limit range of the random CLAHE
TINT_SHARE = 3.0  # per-channel gains vary by color / 3: stronger tints cost 8-class pbc-mini 4-14 points


@dataclass(frozen=True)
class RandomAugment:
    """Draws flips, a rotation angle and whether to apply CLAHE (clip limit uniform in RANDOM_CLAHE_CLIP)."""

    hflip: bool = True
    vflip: bool = True
    rotation: float = 90.0
    clahe_p: float = 0.0
    clahe_grid: int = 8
    zoom: float = 0.0  # scale uniform in [1 - zoom, 1 + zoom], in the rotation's warp
    shift: float = 0.0  # translation uniform in +-shift x the side, per axis
    color: float = 0.0  # brightness, contrast, saturation in [1 - color, 1 + color]; tint by color / 3
    fill: str = "black"  # what the warp brings in at the borders: black (C-NMC) | reflect (smears)

    @classmethod
    def from_config(cls, aug: AugmentConfig, clahe_grid: int = 8) -> RandomAugment:
        if not aug.enabled:
            return cls(False, False, 0.0, 0.0, clahe_grid)
        if not 0.0 <= aug.clahe_p <= 1.0 or aug.rotation < 0:
            raise ValueError("augment.clahe_p must be in [0, 1] and augment.rotation >= 0")
        zoom, shift, color = (float(v or 0.0) for v in (aug.zoom, aug.shift, aug.color))
        if not (0.0 <= zoom < 1.0 and 0.0 <= shift < 0.5 and 0.0 <= color < 1.0):
            raise ConfigError(
                f"augment zoom {zoom}, shift {shift}, color {color} out of range",
                hint="zoom and color in [0, 1), shift in [0, 0.5)",
            )
        return cls(
            aug.hflip, aug.vflip, float(aug.rotation), float(aug.clahe_p), clahe_grid,
            zoom=zoom, shift=shift, color=color, fill=aug.fill or "black",
        )  # fmt: skip

    @property
    def active(self) -> bool:
        flips_or_rotation = self.hflip or self.vflip or self.rotation > 0
        return flips_or_rotation or self.clahe_p > 0 or self.geometric or self.color > 0

    @property
    def geometric(self) -> bool:
        return self.zoom > 0 or self.shift > 0

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A randomly augmented copy of one HWC uint8 RGB image (the draws happen in a fixed order)."""
        flip_h = self.hflip and rng.random() < 0.5
        flip_v = self.vflip and rng.random() < 0.5
        angle = rng.uniform(-self.rotation, self.rotation) if self.rotation > 0 else 0.0
        clahe = self.clahe_p > 0 and rng.random() < self.clahe_p
        clip = rng.uniform(*RANDOM_CLAHE_CLIP)
        # drawn after the original four, and only when enabled: streams without them are unchanged
        scale = rng.uniform(1.0 - self.zoom, 1.0 + self.zoom) if self.zoom > 0 else 1.0
        offset = rng.uniform(-self.shift, self.shift, 2) if self.shift > 0 else np.zeros(2)
        jitter = rng.uniform(-self.color, self.color, 6) if self.color > 0 else None
        out = np.asarray(image)
        if flip_h:
            out = out[:, ::-1]
        if flip_v:
            out = out[::-1]
        if angle or self.geometric:
            out = rotate(out, angle, scale, offset * out.shape[0], self.fill)
        if clahe:
            out = apply_clahe(np.ascontiguousarray(out), clip, self.clahe_grid)
        if jitter is not None:
            gains = (1.0 + jitter[0]) * (1.0 + jitter[1:4] / TINT_SHARE)  # brightness x a milder tint
            out = color_jitter(out, gains, 1.0 + jitter[4], 1.0 + jitter[5])
        return np.ascontiguousarray(out)


def rotate(
    image: np.ndarray,
    angle: float,
    scale: float = 1.0,
    offset: np.ndarray | None = None,
    fill: str = "black",
) -> np.ndarray:
    """Rotate (and scale, shift) about the centre, bilinear; the corners black (the C-NMC background)
    or, with fill="reflect", mirrored image (a blood smear has no black background)."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, scale)
    if offset is not None:
        matrix[:, 2] += offset
    border = cv2.BORDER_REFLECT_101 if fill == "reflect" else cv2.BORDER_CONSTANT
    return cv2.warpAffine(
        np.ascontiguousarray(image), matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=border,
        borderValue=(0, 0, 0),
    )  # fmt: skip


def color_jitter(image: np.ndarray, gains: np.ndarray, contrast: float, saturation: float) -> np.ndarray:
    """Stain and illumination variation: saturation about each pixel's grey, contrast about the image's
    mean grey, then a gain per RGB channel (brightness and white balance); black stays black."""
    x = image.astype(np.float32)
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = grey[..., None] + saturation * (x - grey[..., None])
    x = (x - grey.mean()) * contrast + grey.mean()
    x = x * np.asarray(gains, np.float32)
    out = np.clip(x + 0.5, 0, 255).astype(np.uint8)
    out[image.max(axis=-1) == 0] = 0
    return out


def sample_rng(seed: int, *keys: int) -> np.random.Generator:
    """The generator of one sample: a pure function of (seed, epoch, position...)."""
    return np.random.default_rng([int(seed), *(int(k) for k in keys)])
