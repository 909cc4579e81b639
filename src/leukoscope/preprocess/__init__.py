"""Stage 2: crop, CLAHE, resize, random augmentation, normalisation statistics and a memory-mapped cache.

Framework-free (NumPy + OpenCV): the cache, `data check` and the workflow's crop/augment stages never
import TensorFlow.
"""

from __future__ import annotations

from leukoscope.preprocess.augment import RandomAugment
from leukoscope.preprocess.cache import CachedImages, PreprocessCache
from leukoscope.preprocess.clahe import apply_clahe
from leukoscope.preprocess.normalize import compute_mean_std, resolve_normalization
from leukoscope.preprocess.pipeline import preprocess_image

__all__ = [
    "CachedImages",
    "PreprocessCache",
    "RandomAugment",
    "apply_clahe",
    "compute_mean_std",
    "preprocess_image",
    "resolve_normalization",
]
