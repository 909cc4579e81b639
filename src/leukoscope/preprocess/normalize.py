"""Per-channel mean/std for input standardisation (the paper uses the training set's own statistics)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from leukoscope.config import PreprocessConfig
from leukoscope.errors import ConfigError
from leukoscope.preprocess.cache import release_pages


def compute_mean_std(
    images: Any, indices: Sequence[int] | np.ndarray | None = None, batch: int = 256
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Mean and (population) std per RGB channel in [0, 1] units over `images[indices]`.

    `images` is an (N, S, S, 3) uint8 array, memmap or `CachedImages`; it is read `batch` images at a
    time, so a multi-GB memmap is never loaded whole. Sums are accumulated in float64, so the result
    matches a full float64 numpy computation.
    """
    array = getattr(images, "array", images)
    idx = np.arange(len(array)) if indices is None else np.sort(np.asarray(indices, dtype=np.int64))
    if idx.size == 0:
        raise ConfigError("cannot compute mean/std of zero images", hint="check the training split")
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for start in range(0, idx.size, max(1, batch)):
        chunk = _read_chunk(array, idx[start : start + batch])
        pixels = chunk.shape[0] * chunk.shape[1] * chunk.shape[2]
        mean, std = cv2.meanStdDev(chunk.reshape(-1, chunk.shape[2], 3))  # SIMD, float64 results
        total += mean.ravel() * pixels
        total_sq += (std.ravel() ** 2 + mean.ravel() ** 2) * pixels
        count += pixels
        release_pages(array)  # streamed: the pages read so far leave this process's RSS
    mean = total / count
    var = np.maximum(total_sq / count - mean**2, 0.0)
    return _triple(mean / 255.0), _triple(np.sqrt(var) / 255.0)


def _read_chunk(array: Any, idx: np.ndarray) -> np.ndarray:
    """Read sorted indices: contiguous runs become one slice (sequential reads on a memmap)."""
    if isinstance(array, np.ndarray):
        contiguous = idx[-1] - idx[0] + 1 == idx.size
        chunk = array[idx[0] : idx[-1] + 1] if contiguous else array[idx]
    else:
        chunk = np.stack([np.asarray(array[int(i)]) for i in idx])
    if chunk.dtype != np.uint8 or chunk.ndim != 4 or chunk.shape[3] != 3:
        raise ValueError(f"compute_mean_std needs (N, H, W, 3) uint8 images, got {chunk.dtype} {chunk.shape}")
    return np.ascontiguousarray(chunk)


def _triple(values: np.ndarray) -> tuple[float, float, float]:
    return float(values[0]), float(values[1]), float(values[2])


def resolve_normalization(
    cfg: PreprocessConfig,
    train_images: Any = None,
    train_indices: Sequence[int] | np.ndarray | None = None,
) -> PreprocessConfig:
    """Return a copy of `cfg` with `mean`/`std` filled in (normalize="dataset").

    Statistics of `train_images[train_indices]`: pass ONLY the training split, since statistics from
    validation or test images would leak them into training. Images whose decode failed
    (`CachedImages.ok` is False) are skipped. normalize="backbone" needs no statistics (the model applies
    its backbone's own preprocessing). A config whose mean and std are already set (e.g. from a trained
    model's card) is returned unchanged, so inference reuses training's values.
    """
    if cfg.mean is not None and cfg.std is not None:
        return dataclasses.replace(cfg)
    if cfg.normalize == "backbone":
        return dataclasses.replace(cfg)
    if cfg.normalize != "dataset":
        raise ConfigError(f"preprocess.normalize is {cfg.normalize!r}", hint="choose: dataset, backbone")
    if train_images is None:
        raise ConfigError("preprocess.normalize is 'dataset' but no training images were given")
    indices = np.arange(len(train_images)) if train_indices is None else np.asarray(train_indices, np.int64)
    ok = getattr(train_images, "ok", None)
    if ok is not None:
        indices = indices[np.asarray(ok, dtype=bool)[indices]]
    mean, std = compute_mean_std(train_images, indices)
    return with_stats(cfg, mean, std)


def with_stats(cfg: PreprocessConfig, mean: Sequence[float], std: Sequence[float]) -> PreprocessConfig:
    """`cfg` with the given statistics; a constant channel (std 0) cannot be standardised."""
    if min(std) <= 0:
        raise ConfigError(
            "the training images have a constant colour channel (std 0), so they cannot be standardised",
            hint="check the training data, or use preprocess.normalize=backbone",
        )
    return dataclasses.replace(cfg, mean=_triple(np.asarray(mean)), std=_triple(np.asarray(std)))
