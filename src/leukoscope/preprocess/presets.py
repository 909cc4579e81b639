"""Train / eval transforms, in the style of torchvision's reference `presets.py`.

Inputs are the cache's uint8 HWC arrays (already cropped and resized). Augmentation runs on the uint8
tensor (4x less memory traffic than float) and the conversion to float happens once, at the end.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from leukoscope.config import AugmentConfig, PreprocessConfig
from leukoscope.errors import ConfigError
from leukoscope.preprocess.augment import RandomCLAHE
from leukoscope.preprocess.pipeline import preprocess_image

RANDOM_CLAHE_CLIP = (1.0, 4.0)  # clip-limit range of the random CLAHE augmentation


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """HWC uint8 array (a read-only memmap slot is fine: it is copied) -> CHW uint8 tensor."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 image, got {image.dtype} {image.shape}")
    return torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)


def _normalize(pre: PreprocessConfig) -> list[T.Transform]:
    if pre.mean is None or pre.std is None:
        raise ConfigError(
            "preprocess.mean/std are not set",
            hint="call leukoscope.preprocess.resolve_normalization first (training split or backbone stats)",
        )
    return [T.ToDtype(torch.float32, scale=True), T.Normalize(mean=list(pre.mean), std=list(pre.std))]


class TrainPreset:
    """Random flips, rotation (black fill, like the background) and CLAHE, then float + standardise."""

    def __init__(self, pre: PreprocessConfig, aug: AugmentConfig) -> None:
        steps: list[T.Transform] = []
        if aug.enabled:
            if aug.hflip:
                steps.append(T.RandomHorizontalFlip())
            if aug.vflip:
                steps.append(T.RandomVerticalFlip())
            if aug.rotation > 0:
                steps.append(T.RandomRotation(aug.rotation, interpolation=InterpolationMode.BILINEAR, fill=0))
            if aug.clahe_p > 0:
                steps.append(RandomCLAHE(aug.clahe_p, RANDOM_CLAHE_CLIP, pre.clahe_grid))
        self.transforms = T.Compose(steps + _normalize(pre))

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        return self.transforms(_to_tensor(image))


class EvalPreset:
    """No randomness: float + standardise with the training statistics."""

    def __init__(self, pre: PreprocessConfig) -> None:
        self.transforms = T.Compose(_normalize(pre))

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        return self.transforms(_to_tensor(image))


def preprocess_for_inference(rgb: np.ndarray, pre: PreprocessConfig) -> torch.Tensor:
    """A decoded RGB uint8 image -> the (3, S, S) float32 tensor the model saw at evaluation."""
    return EvalPreset(pre)(preprocess_image(rgb, pre))
