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
from leukoscope.preprocess.clahe import apply_clahe

RANDOM_CLAHE_CLIP = (1.0, 4.0)  # clip-limit range of the random CLAHE


@dataclass(frozen=True)
class RandomAugment:
    """Draws flips, a rotation angle and whether to apply CLAHE (clip limit uniform in RANDOM_CLAHE_CLIP)."""

    hflip: bool = True
    vflip: bool = True
    rotation: float = 90.0
    clahe_p: float = 0.0
    clahe_grid: int = 8

    @classmethod
    def from_config(cls, aug: AugmentConfig, clahe_grid: int = 8) -> RandomAugment:
        if not aug.enabled:
            return cls(False, False, 0.0, 0.0, clahe_grid)
        if not 0.0 <= aug.clahe_p <= 1.0 or aug.rotation < 0:
            raise ValueError("augment.clahe_p must be in [0, 1] and augment.rotation >= 0")
        return cls(aug.hflip, aug.vflip, float(aug.rotation), float(aug.clahe_p), clahe_grid)

    @property
    def active(self) -> bool:
        return self.hflip or self.vflip or self.rotation > 0 or self.clahe_p > 0

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A randomly augmented copy of one HWC uint8 RGB image (the draws happen in a fixed order)."""
        flip_h = self.hflip and rng.random() < 0.5
        flip_v = self.vflip and rng.random() < 0.5
        angle = rng.uniform(-self.rotation, self.rotation) if self.rotation > 0 else 0.0
        clahe = self.clahe_p > 0 and rng.random() < self.clahe_p
        clip = rng.uniform(*RANDOM_CLAHE_CLIP)
        out = np.asarray(image)
        if flip_h:
            out = out[:, ::-1]
        if flip_v:
            out = out[::-1]
        if angle:
            out = rotate(out, angle)
        if clahe:
            out = apply_clahe(np.ascontiguousarray(out), clip, self.clahe_grid)
        return np.ascontiguousarray(out)


def rotate(image: np.ndarray, angle: float) -> np.ndarray:
    """Rotate about the centre, bilinear, filling the corners with black (the C-NMC background)."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    return cv2.warpAffine(
        np.ascontiguousarray(image), matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0)
    )


def sample_rng(seed: int, *keys: int) -> np.random.Generator:
    """The generator of one sample: a pure function of (seed, epoch, position...)."""
    return np.random.default_rng([int(seed), *(int(k) for k in keys)])
