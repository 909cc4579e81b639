"""RandomAugment: flips, rotation with black fill and random CLAHE, reproducible from a seed alone."""

from __future__ import annotations

import numpy as np
import pytest

from leukoscope.config import AugmentConfig
from leukoscope.preprocess import apply_clahe
from leukoscope.preprocess.augment import RandomAugment, rotate, sample_rng

from .helpers import cell_image


def _cell() -> np.ndarray:
    return cell_image(size=(64, 64), center=(40, 24), axes=(14, 8), angle=20)


def test_same_seed_same_image_different_seed_differs() -> None:
    aug = RandomAugment(rotation=90, clahe_p=0.5)
    a = aug(_cell(), sample_rng(3, 1, 7))
    b = aug(_cell(), sample_rng(3, 1, 7))
    np.testing.assert_array_equal(a, b)
    others = [aug(_cell(), sample_rng(3, 1, k)) for k in range(8)]
    assert sum(not np.array_equal(a, o) for o in others) >= 6


def test_flips_only_are_exact_mirror_images() -> None:
    img = _cell()
    aug = RandomAugment(hflip=True, vflip=True, rotation=0, clahe_p=0)
    seen = {aug(img, sample_rng(0, k)).tobytes() for k in range(40)}
    views = {
        img.tobytes(),
        img[:, ::-1].copy().tobytes(),
        img[::-1].copy().tobytes(),
        img[::-1, ::-1].copy().tobytes(),
    }
    assert seen == views  # all four, and nothing else


def test_rotation_fills_with_black_and_keeps_the_cell() -> None:
    img = cell_image(size=(64, 64), center=(32, 32), axes=(20, 8))
    out = rotate(img, 90)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert (out[0, 0] == 0).all() and (out[-1, -1] == 0).all()
    assert (
        abs(int((out.max(axis=2) > 15).sum()) - int((img.max(axis=2) > 15).sum()))
        < 0.05 * (img.max(axis=2) > 15).sum()
    )
    np.testing.assert_array_equal(rotate(img, 90)[2:-2, 2:-2], np.rot90(img, 1)[2:-2, 2:-2])


def test_random_clahe_with_p_one_is_clahe() -> None:
    img = (_cell() * 0.6).astype(np.uint8)
    out = RandomAugment(False, False, 0.0, clahe_p=1.0)(img, sample_rng(5))
    # the clip limit is drawn from [1, 4]: the result is CLAHE at one of those limits
    errors = [
        np.abs(out.astype(int) - apply_clahe(img, c, 8).astype(int)).max() for c in np.linspace(1, 4, 301)
    ]
    assert min(errors) <= 1


def test_clahe_probability_is_respected() -> None:
    img = (_cell() * 0.6).astype(np.uint8)
    aug = RandomAugment(False, False, 0.0, clahe_p=0.3)
    changed = sum(not np.array_equal(aug(img, sample_rng(1, k)), img) for k in range(400))
    assert 80 < changed < 160


def test_from_config_and_disabled() -> None:
    assert not RandomAugment.from_config(AugmentConfig(enabled=False)).active
    aug = RandomAugment.from_config(AugmentConfig(rotation=15, clahe_p=0.2), clahe_grid=4)
    assert (aug.rotation, aug.clahe_p, aug.clahe_grid) == (15.0, 0.2, 4)
    with pytest.raises(ValueError, match="clahe_p"):
        RandomAugment.from_config(AugmentConfig(clahe_p=2.0))
