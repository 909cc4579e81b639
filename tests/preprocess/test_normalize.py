from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from leukoscope.config import PreprocessConfig
from leukoscope.errors import ConfigError
from leukoscope.preprocess import CachedImages, compute_mean_std, resolve_normalization


def _images(n: int = 37, size: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    red = rng.integers(0, 256, (n, size, size))
    green = rng.integers(50, 120, (n, size, size))
    blue = rng.normal(200, 20, (n, size, size)).clip(0, 255)
    return np.stack([red, green, blue], axis=3).astype(np.uint8)


def _numpy_stats(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    full = arr.astype(np.float64) / 255.0
    return full.mean(axis=(0, 1, 2)), full.std(axis=(0, 1, 2))


@pytest.mark.parametrize("batch", [1, 5, 256])
def test_streamed_stats_equal_numpy(batch):
    arr = _images()
    mean, std = compute_mean_std(arr, batch=batch)
    ref_mean, ref_std = _numpy_stats(arr)
    np.testing.assert_allclose(mean, ref_mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(std, ref_std, rtol=0, atol=1e-10)


def test_stats_of_a_subset_from_a_memmap(tmp_path):
    arr = _images()
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8, shape=arr.shape)
    mm[:] = arr
    mm.flush()
    ro = np.load(tmp_path / "x.npy", mmap_mode="r")
    idx = [30, 2, 3, 4, 17, 9]  # unsorted, partly contiguous
    mean, std = compute_mean_std(ro, idx, batch=4)
    ref_mean, ref_std = _numpy_stats(arr[sorted(idx)])
    np.testing.assert_allclose(mean, ref_mean, atol=1e-12)
    np.testing.assert_allclose(std, ref_std, atol=1e-10)
    mean_list, _ = compute_mean_std([arr[i] for i in range(len(arr))], idx)  # a plain sequence works too
    np.testing.assert_allclose(mean_list, ref_mean, atol=1e-12)


def test_zero_images_is_a_config_error():
    with pytest.raises(ConfigError):
        compute_mean_std(_images(), [])


def test_dataset_normalization_uses_only_given_ok_training_images():
    arr = _images(10)
    ok = np.ones(10, bool)
    ok[3] = False
    arr[3] = 0  # a failed decode: its black slot must not drag the mean down
    cached = CachedImages(arr, ok, [f"{i}.bmp" for i in range(10)])
    cfg = PreprocessConfig(normalize="dataset")
    out = resolve_normalization(cfg, cached, train_indices=[0, 1, 2, 3, 4])
    ref_mean, ref_std = _numpy_stats(arr[[0, 1, 2, 4]])
    np.testing.assert_allclose(out.mean, ref_mean, atol=1e-12)
    np.testing.assert_allclose(out.std, ref_std, atol=1e-10)
    assert cfg.mean is None and cfg.std is None  # a copy, the input is untouched
    assert dataclasses.replace(out, mean=None, std=None) == cfg


def test_backbone_normalization_needs_no_statistics():
    # the model's first layer applies the backbone's own preprocessing (models.layers.input_affine)
    out = resolve_normalization(PreprocessConfig(normalize="backbone"))
    assert out.mean is None and out.std is None and out.normalize == "backbone"


def test_preset_values_are_kept_and_missing_inputs_are_errors():
    cfg = PreprocessConfig(mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))
    assert resolve_normalization(cfg, _images()) == cfg
    with pytest.raises(ConfigError, match="no training images"):
        resolve_normalization(PreprocessConfig())
    with pytest.raises(ConfigError, match="constant"):
        resolve_normalization(PreprocessConfig(), np.zeros((2, 4, 4, 3), np.uint8))
