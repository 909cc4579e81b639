"""create_classifier: any timm backbone + the paper's head, logits (B,) for two classes and (B, N) for N."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from leukoscope.errors import ConfigError, ModelError
from leukoscope.models import HEADS, create_classifier

SIZE = 64


def _images(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def test_two_classes_give_one_logit_per_image() -> None:
    model = create_classifier("resnet18", 2).eval()
    with torch.no_grad():
        assert model(_images(3)).shape == (3,)
        assert model(_images(1)).shape == (1,)


def test_n_classes_give_n_logits() -> None:
    model = create_classifier("mobilenetv2_100", 5).eval()
    with torch.no_grad():
        assert model(_images(3)).shape == (3, 5)


def test_head_is_gap_dense256_relu_out() -> None:
    model = create_classifier("resnet18", 2).eval()
    layers = list(model.head)
    assert [type(m) for m in layers] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (layers[0].in_features, layers[0].out_features) == (512, 256)
    assert (layers[2].in_features, layers[2].out_features) == (256, 1)
    x = _images()
    with torch.no_grad():
        pooled = model.backbone.forward_features(x).mean(dim=(2, 3))  # global average pooling
        expected = layers[2](torch.relu(layers[0](pooled)))[:, 0]
        assert torch.allclose(model(x), expected, atol=1e-5)


def test_head_options() -> None:
    model = create_classifier("resnet18", 3, head_hidden=64, dropout=0.3, drop_rate=0.2)
    assert [type(m) for m in model.head] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert model.head[0].out_features == 64 and model.head[3].out_features == 3
    assert model.backbone.drop_rate == 0.2
    linear = create_classifier("resnet18", 2, head="linear")
    assert [type(m) for m in linear.head] == [nn.Linear] and linear.head[0].in_features == 512
    assert {"paper", "linear"} <= set(HEADS.names())


@pytest.mark.parametrize(
    ("name", "features", "mean"),
    [
        ("densenet201", 1920, (0.485, 0.456, 0.406)),
        ("efficientnet_b2", 1408, (0.485, 0.456, 0.406)),
        ("tf_efficientnet_b2", 1408, (0.485, 0.456, 0.406)),
        ("tf_efficientnet_lite0", 1280, (0.5, 0.5, 0.5)),
    ],
)
def test_paper_and_lite_backbones(name: str, features: int, mean: tuple[float, ...]) -> None:
    model = create_classifier(name, 2)
    assert model.head[0].in_features == features
    assert model.backbone_name == name and model.weights_source == "none"
    assert tuple(model.data_config["mean"]) == pytest.approx(mean)
    assert {"input_size", "mean", "std", "interpolation"} <= set(model.data_config)


def test_unknown_backbone_suggests_close_names() -> None:
    with pytest.raises(ModelError) as info:
        create_classifier("resnet181", 2)
    message = str(info.value)
    assert "unknown backbone 'resnet181'" in message and "resnet18," in message
    assert "timm.list_models" in message and "\n" not in message


@pytest.mark.parametrize(
    "kwargs",
    [{"num_classes": 1}, {"head_hidden": 0}, {"dropout": 1.0}, {"drop_rate": -0.1}, {"head": "mlp3"}],
)
def test_bad_settings_are_config_errors(kwargs: dict) -> None:
    args = {"backbone": "resnet18", "num_classes": 2, **kwargs}
    with pytest.raises(ConfigError):
        create_classifier(**args)
