"""The model's first layer maps 0-255 pixels to what each backbone expects, under both normalisations."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from leukoscope.models.layers import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClassProbabilities,
    PixelStandardization,
    input_affine,
)

MEAN, STD = (0.62, 0.41, 0.55), (0.21, 0.18, 0.24)  # a training set's statistics in [0, 1] units


def _pixels(n: int = 4, size: int = 8) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def _apply(mode: str, normalize: str, x: np.ndarray) -> np.ndarray:
    scale, offset, bgr = input_affine(mode, normalize, MEAN, STD)
    return np.asarray(PixelStandardization(scale, offset, bgr)(x))


def _standardised(x: np.ndarray) -> np.ndarray:
    return (x / 255.0 - np.asarray(MEAN)) / np.asarray(STD)


def test_dataset_normalisation_gives_densenet_the_papers_standardised_input() -> None:
    x = _pixels()
    np.testing.assert_allclose(_apply("torch", "dataset", x), _standardised(x), atol=1e-4)


def test_dataset_normalisation_survives_efficientnets_own_imagenet_preprocessing() -> None:
    # EfficientNet built with ImageNet weights: Rescaling(1/255) -> Normalization(mean, variance=std: a
    # known Keras quirk) -> Rescaling(1/sqrt(std)); the backbone must end up seeing the standardised image
    x = _pixels()
    std = np.asarray(IMAGENET_STD)
    internal = keras.Sequential(
        [
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Normalization(mean=list(IMAGENET_MEAN), variance=std.tolist()),
            keras.layers.Rescaling((1 / np.sqrt(std)).tolist()),
        ]
    )
    seen = np.asarray(internal(_apply("raw", "dataset", x)))
    np.testing.assert_allclose(seen, _standardised(x), atol=1e-4)


@pytest.mark.parametrize(
    ("mode", "reference"),
    [
        ("torch", keras.applications.densenet.preprocess_input),
        ("tf", keras.applications.mobilenet_v2.preprocess_input),
        ("caffe", keras.applications.resnet50.preprocess_input),
        ("raw", keras.applications.efficientnet.preprocess_input),
    ],
)
def test_backbone_normalisation_is_the_applications_preprocess_input(mode: str, reference) -> None:
    x = _pixels()
    np.testing.assert_allclose(_apply(mode, "backbone", x), reference(x.copy()), atol=1e-3)


def test_dataset_mode_needs_statistics() -> None:
    with pytest.raises(ValueError, match="mean and std"):
        input_affine("torch", "dataset")


def test_class_probabilities_order_and_temperature() -> None:
    logits = np.array([[2.0], [-1.0]], np.float32)
    p = 1 / (1 + np.exp(-logits[:, 0] / 2.0))
    first = np.asarray(ClassProbabilities(2.0, positive_index=0)(logits))
    np.testing.assert_allclose(first, np.stack([p, 1 - p], 1), atol=1e-6)
    second = np.asarray(ClassProbabilities(1.0, positive_index=1)(logits))
    np.testing.assert_allclose(second[:, 1], 1 / (1 + np.exp(-logits[:, 0])), atol=1e-6)
    many = np.asarray(ClassProbabilities()(np.array([[1.0, 2.0, 3.0]], np.float32)))
    np.testing.assert_allclose(many.sum(1), 1.0, atol=1e-6)
