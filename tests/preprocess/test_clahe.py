from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from leukoscope.config import PreprocessConfig
from leukoscope.preprocess import RandomCLAHE, apply_clahe, preprocess_image

from .helpers import cell_image


def _low_contrast(size: int = 64) -> np.ndarray:
    """A dull, slightly coloured gradient: CLAHE has contrast to gain, colours stay in gamut."""
    ramp = np.linspace(100, 140, size)[None, :] + np.linspace(0, 10, size)[:, None]
    rgb = np.stack([ramp + 10, ramp, ramp + 5], axis=2)
    return rgb.round().astype(np.uint8)


def test_clahe_raises_contrast_of_lightness_only():
    img = _low_contrast()
    out = apply_clahe(img, clip=4.0, grid=2)
    lab_in = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).astype(float)
    lab_out = cv2.cvtColor(out, cv2.COLOR_RGB2LAB).astype(float)
    assert lab_out[:, :, 0].std() > 1.5 * lab_in[:, :, 0].std()
    assert np.abs(lab_out[:, :, 1:] - lab_in[:, :, 1:]).mean() < 0.5  # hue kept (up to rounding)


def test_clahe_as_preprocessing_is_deterministic():
    img = cell_image(size=(96, 96), center=(48, 48), axes=(30, 22))
    img = (img * 0.5).astype(np.uint8)
    cfg = PreprocessConfig(image_size=64, clahe=True, clahe_clip=3.0, clahe_grid=4)
    a, b = preprocess_image(img, cfg), preprocess_image(img, cfg)
    np.testing.assert_array_equal(a, b)
    plain = preprocess_image(img, PreprocessConfig(image_size=64))
    assert not np.array_equal(a, plain)
    np.testing.assert_array_equal(a, apply_clahe(plain, 3.0, 4))


def test_clahe_rejects_non_rgb():
    with pytest.raises(ValueError, match="uint8"):
        apply_clahe(np.zeros((8, 8), np.uint8))


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).contiguous()


def test_random_clahe_p1_equals_apply_clahe_on_tensor_and_tv_image():
    img = _low_contrast()
    expected = _chw(apply_clahe(img, 2.5, 8))
    t = RandomCLAHE(p=1.0, clip_limit=(2.5, 2.5), grid=8)
    out = t(_chw(img))
    assert out.dtype == torch.uint8 and torch.equal(out, expected)
    wrapped = t(tv_tensors.Image(_chw(img)))
    assert isinstance(wrapped, tv_tensors.Image) and torch.equal(wrapped.as_subclass(torch.Tensor), expected)


def test_random_clahe_keeps_float_range_batches_and_passes_masks_through():
    img = _low_contrast()
    t = RandomCLAHE(p=1.0, clip_limit=3.0, grid=4)
    f = t(_chw(img).float() / 255)
    assert f.dtype == torch.float32 and f.min() >= 0 and f.max() <= 1
    np.testing.assert_allclose(f.numpy() * 255, _chw(apply_clahe(img, 3.0, 4)).numpy(), atol=1e-3)
    batch = t(torch.stack([_chw(img), _chw(img)]))
    assert batch.shape == (2, 3, 64, 64) and torch.equal(batch[0], batch[1])
    mask = tv_tensors.Mask(torch.ones(64, 64, dtype=torch.uint8))
    image_out, mask_out = t(tv_tensors.Image(_chw(img)), mask)
    assert torch.equal(mask_out, mask) and not torch.equal(image_out, _chw(img))


def test_random_clahe_applies_with_probability_p():
    img = _chw(_low_contrast())
    torch.manual_seed(0)
    t = RandomCLAHE(p=0.3, clip_limit=(1.0, 4.0), grid=4)
    applied = sum(not torch.equal(t(img), img) for _ in range(400))
    assert 0.22 * 400 <= applied <= 0.38 * 400
    never = RandomCLAHE(p=0.0)
    assert all(torch.equal(never(img), img) for _ in range(20))


def test_random_clahe_draws_the_clip_limit_from_the_range():
    img = _chw(_low_contrast())
    torch.manual_seed(1)
    t = RandomCLAHE(p=1.0, clip_limit=(1.0, 4.0), grid=2)  # 32 x 32 tiles: fine clip-limit steps
    outputs = {t(img).numpy().tobytes() for _ in range(10)}
    assert len(outputs) > 3


@pytest.mark.parametrize("kwargs", [{"p": 1.5}, {"clip_limit": (3.0, 1.0)}, {"grid": 0}])
def test_random_clahe_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        RandomCLAHE(**kwargs)
