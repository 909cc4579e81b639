"""The deterministic per-image pipeline: what the cache stores and what inference feeds the model."""

from __future__ import annotations

from typing import Any

import numpy as np

from leukoscope.config import PreprocessConfig
from leukoscope.errors import ConfigError
from leukoscope.preprocess.clahe import apply_clahe
from leukoscope.preprocess.crop import crop_cell, crop_center, pad_to_square, resize_square

# Fields that change the stored pixels; mean/std/normalize act later (presets), so they must not
# invalidate the cache.
DETERMINISTIC_FIELDS = (
    "crop",
    "image_size",
    "black_threshold",
    "center_fraction",
    "clahe",
    "clahe_clip",
    "clahe_grid",
)


def deterministic_fields(cfg: PreprocessConfig) -> dict[str, Any]:
    """The settings that decide a preprocessed image (the cache key's parameter part)."""
    return {name: getattr(cfg, name) for name in DETERMINISTIC_FIELDS}


def check_config(cfg: PreprocessConfig) -> None:
    """Refuse impossible settings once, with a hint, before thousands of images are processed."""
    if cfg.crop == "auto":
        raise ConfigError(
            "preprocess.crop auto must be resolved from the data before preprocessing",
            hint="resolve it with leukoscope.preprocess.crop.choose_crop, or choose cell, center or none",
        )
    if cfg.crop not in ("cell", "center", "none"):
        raise ConfigError(f"preprocess.crop is {cfg.crop!r}", hint="choose one of: auto, cell, center, none")
    if cfg.image_size < 8:
        raise ConfigError(f"preprocess.image_size is {cfg.image_size}", hint="use at least 8 (e.g. 224)")
    if not 0 <= cfg.black_threshold < 255:
        raise ConfigError(f"preprocess.black_threshold is {cfg.black_threshold}", hint="use 0..254")
    if not 0 < cfg.center_fraction <= 1:
        raise ConfigError(f"preprocess.center_fraction is {cfg.center_fraction}", hint="use (0, 1]")
    if cfg.clahe and (cfg.clahe_clip <= 0 or cfg.clahe_grid < 1):
        raise ConfigError("preprocess.clahe_clip must be > 0 and preprocess.clahe_grid >= 1")


def preprocess_image(rgb: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Crop (cell / center / none), pad to square, resize to `image_size`, optional CLAHE -> uint8 (S,S,3).

    CLAHE runs after resizing so its tile grid covers the same share of the cell at every input size.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"preprocess_image needs an H x W x 3 uint8 image, got {rgb.dtype} {rgb.shape}")
    check_config(cfg)
    if cfg.crop == "cell":
        rgb = crop_cell(rgb, cfg.black_threshold)
    elif cfg.crop == "center":
        rgb = crop_center(rgb, cfg.center_fraction)
    out = resize_square(pad_to_square(rgb), cfg.image_size)
    if cfg.clahe:
        out = apply_clahe(out, cfg.clahe_clip, cfg.clahe_grid)
    return out
