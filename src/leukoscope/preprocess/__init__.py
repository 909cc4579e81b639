"""Stage 2: crop, CLAHE, resize, normalisation statistics, a memory-mapped cache and train/eval presets.

Torch-based names (RandomCLAHE, TrainPreset, EvalPreset, preprocess_for_inference) are imported on
first use, so the cache and `data check` do not pay torchvision's import time.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from leukoscope.preprocess.cache import CachedImages, PreprocessCache
from leukoscope.preprocess.clahe import apply_clahe
from leukoscope.preprocess.normalize import compute_mean_std, resolve_normalization
from leukoscope.preprocess.pipeline import preprocess_image

if TYPE_CHECKING:
    from leukoscope.preprocess.augment import RandomCLAHE
    from leukoscope.preprocess.presets import EvalPreset, TrainPreset, preprocess_for_inference

_LAZY = {
    "RandomCLAHE": "leukoscope.preprocess.augment",
    "TrainPreset": "leukoscope.preprocess.presets",
    "EvalPreset": "leukoscope.preprocess.presets",
    "preprocess_for_inference": "leukoscope.preprocess.presets",
}

__all__ = [
    "CachedImages",
    "EvalPreset",
    "PreprocessCache",
    "RandomCLAHE",
    "TrainPreset",
    "apply_clahe",
    "compute_mean_std",
    "preprocess_for_inference",
    "preprocess_image",
    "resolve_normalization",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
