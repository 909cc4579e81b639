from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from leukoscope.config import AugmentConfig, PreprocessConfig
from leukoscope.errors import ConfigError
from leukoscope.preprocess import (
    EvalPreset,
    RandomCLAHE,
    TrainPreset,
    preprocess_for_inference,
    preprocess_image,
)

from .helpers import cell_image

PRE = PreprocessConfig(image_size=48, mean=(0.2, 0.3, 0.4), std=(0.5, 0.25, 0.125))


def _expected(img: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)
    return (x - torch.tensor(PRE.mean).view(3, 1, 1)) / torch.tensor(PRE.std).view(3, 1, 1)


def _cell() -> np.ndarray:
    return preprocess_image(cell_image(center=(50, 60), axes=(30, 15), angle=20), PRE)


def test_eval_preset_normalises_with_the_config_stats(tmp_path):
    img = _cell()
    np.save(tmp_path / "a.npy", img[None])
    memmap_slot = np.load(tmp_path / "a.npy", mmap_mode="r")[0]  # read-only, as from the cache
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = EvalPreset(PRE)(memmap_slot)
    assert out.dtype == torch.float32 and out.shape == (3, 48, 48)
    torch.testing.assert_close(out, _expected(img))


@pytest.mark.parametrize("preset", [lambda p: EvalPreset(p), lambda p: TrainPreset(p, AugmentConfig())])
def test_presets_refuse_missing_stats(preset):
    with pytest.raises(ConfigError, match="resolve_normalization"):
        preset(PreprocessConfig())


def test_train_preset_without_augmentation_equals_eval():
    img = _cell()
    out = TrainPreset(PRE, AugmentConfig(enabled=False))(img)
    torch.testing.assert_close(out, EvalPreset(PRE)(img))


def test_train_preset_flips_randomly():
    img = _cell()
    base = _expected(img)
    variants = [base, base.flip(-1), base.flip(-2), base.flip(-1).flip(-2)]
    preset = TrainPreset(PRE, AugmentConfig(rotation=0.0, clahe_p=0.0))
    torch.manual_seed(0)
    seen = set()
    for _ in range(40):
        out = preset(img)
        matches = [i for i, v in enumerate(variants) if torch.allclose(out, v)]
        assert matches, "output is not a flip of the input"
        seen.add(matches[0])
    assert seen == {0, 1, 2, 3}


def test_train_preset_rotates_with_black_fill():
    white = np.full((48, 48, 3), 255, np.uint8)
    preset = TrainPreset(PRE, AugmentConfig(hflip=False, vflip=False, rotation=90.0, clahe_p=0.0))
    black = _expected(np.zeros((1, 1, 3), np.uint8))[:, 0, 0]
    torch.manual_seed(0)
    corners_black = 0
    for _ in range(10):
        out = preset(white)
        assert out.dtype == torch.float32 and out.shape == (3, 48, 48)
        corners_black += torch.allclose(out[:, 0, 0], black, atol=1e-5)
    assert corners_black >= 7  # every angle but near-zero ones exposes the black fill in the corner


def test_train_preset_contains_random_clahe_with_p():
    preset = TrainPreset(PRE, AugmentConfig(clahe_p=0.4))
    clahe = [t for t in preset.transforms.transforms if isinstance(t, RandomCLAHE)]
    assert len(clahe) == 1 and clahe[0].p == 0.4 and clahe[0].grid == PRE.clahe_grid
    none = TrainPreset(PRE, AugmentConfig(clahe_p=0.0))
    assert not any(isinstance(t, RandomCLAHE) for t in none.transforms.transforms)


def test_preprocess_for_inference_is_preprocess_then_eval():
    raw = cell_image(size=(100, 120), center=(70, 40), axes=(25, 18))
    out = preprocess_for_inference(raw, PRE)
    torch.testing.assert_close(out, _expected(preprocess_image(raw, PRE)))
