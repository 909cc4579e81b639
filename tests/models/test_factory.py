"""build_classifier: any keras.applications backbone by name + the paper's head, flat, returning logits."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from leukoscope.config import PreprocessConfig
from leukoscope.errors import ConfigError, ModelError
from leukoscope.models.backbones import BACKBONES, get_backbone
from leukoscope.models.card import ModelCard, load_model, save_model
from leukoscope.models.factory import ClassifierSpec, build_classifier, probability_model

STATS = {"mean": (0.5, 0.4, 0.3), "std": (0.2, 0.2, 0.2)}


def _spec(backbone: str = "simplecnn", classes: int = 2, size: int = 32, **kw: object) -> ClassifierSpec:
    return ClassifierSpec(backbone, classes, size, **{**STATS, **kw})  # type: ignore[arg-type]


def _pixels(n: int = 2, size: int = 32) -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def test_every_keras_application_is_registered_case_insensitively() -> None:
    names = BACKBONES.names()
    for name in (
        "densenet201",
        "efficientnetb2",
        "efficientnetb0",
        "mobilenetv3small",
        "resnet50",
        "convnexttiny",
    ):
        assert name in names
    assert get_backbone("DenseNet201").label == "DenseNet201"
    assert get_backbone("EfficientNet-B2").name == "efficientnetb2"
    assert get_backbone("efficientnetb2").default_size == 260
    assert get_backbone("densenet201").input_mode == "torch"
    assert get_backbone("efficientnetb2").input_mode == "raw"


def test_unknown_backbone_suggests_close_names() -> None:
    with pytest.raises(ModelError, match="did you mean densenet201") as info:
        get_backbone("densnet201")
    assert "\n" not in str(info.value)


def test_two_classes_give_one_logit_n_classes_give_n() -> None:
    model, feature = build_classifier(_spec())
    assert model.output.shape == (None, 1) and model.input.shape == (None, 32, 32, 3)
    assert feature == "top_activation"
    three, _ = build_classifier(_spec(classes=3))
    assert three(_pixels()).shape == (2, 3)


def test_head_is_gap_dense256_relu_logits() -> None:
    model, _ = build_classifier(_spec())
    names = [layer.name for layer in model.layers]
    assert names[:2] == ["pixels", "standardize"] and names[-3:] == ["head_pool", "head_dense", "logits"]
    dense = model.get_layer("head_dense")
    assert dense.units == 256 and dense.activation is keras.activations.relu
    assert model.get_layer("logits").activation is keras.activations.linear
    with_dropout, _ = build_classifier(_spec(dropout=0.3, head_hidden=64))
    assert with_dropout.get_layer("head_dropout").rate == 0.3
    assert with_dropout.get_layer("head_dense").units == 64


@pytest.mark.parametrize(("name", "feature"), [("densenet201", "relu"), ("efficientnetb2", "top_activation")])
def test_paper_backbones_are_flat_with_their_last_feature_map(name: str, feature: str) -> None:
    model, found = build_classifier(_spec(name, size=32))
    assert found == feature
    layer = model.get_layer(feature)  # reachable: the backbone is not a nested model
    assert len(layer.output.shape) == 4
    grad_model = keras.Model(model.input, [layer.output, model.output])
    maps, logits = grad_model(_pixels())
    assert maps.shape[0] == 2 and logits.shape == (2, 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"classes": 1}, "at least 2 classes"),
        ({"head_hidden": 0}, "head_hidden"),
        ({"dropout": 1.0}, "dropout"),
        ({"size": 8}, "at least 16 px"),
    ],
)
def test_bad_settings_are_one_line_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        build_classifier(_spec(**kwargs))
    assert "\n" not in str(info.value)


def test_dataset_normalisation_without_statistics_is_refused() -> None:
    with pytest.raises(ConfigError, match="mean and std"):
        build_classifier(ClassifierSpec("simplecnn", 2, 32))


def test_save_and_load_round_trip_with_safe_mode(tmp_path: Path) -> None:
    model, _ = build_classifier(_spec())
    card = ModelCard(
        backbone="simplecnn", class_names=["all", "hem"], preprocess=PreprocessConfig(image_size=32)
    )
    save_model(tmp_path, model, card)
    again, card2 = load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(model(_pixels()), again(_pixels()))
    assert card2.framework["keras"] == keras.__version__
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras", "model_card.json"]


def test_probability_model_sums_to_one() -> None:
    model, _ = build_classifier(_spec())
    probs = np.asarray(probability_model(model, temperature=2.0, positive_index=0)(_pixels()))
    assert probs.shape == (2, 2)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)


def test_efficientnet_from_random_weights_sees_the_standardised_image() -> None:
    """Built without weights, EfficientNet's inner Normalization is 0 / 1: it gets ImageNet's statistics
    so the stem sees z = (x / 255 - mean) / std, as with ImageNet weights (and as DenseNet does)."""
    mean, std = (0.5, 0.4, 0.6), (0.2, 0.25, 0.3)
    spec = ClassifierSpec(
        backbone="efficientnetb0", num_classes=2, image_size=32, normalize="dataset", mean=mean, std=std
    )
    model, _ = build_classifier(spec, "none")
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    stem_input = keras.Model(model.input, model.get_layer("stem_conv_pad").input)(x)
    z = (x / 255.0 - np.asarray(mean)) / np.asarray(std)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(stem_input), z, atol=1e-4)
