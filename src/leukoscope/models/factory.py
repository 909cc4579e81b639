"""Any timm backbone + the paper's head (GAP -> Linear(256) -> ReLU -> Linear(out)), returning logits.

Two classes give one logit per image (shape (B,), sigmoid = P(positive class)) as in the paper's Keras
model; N > 2 classes give (B, N) logits for softmax. A new head is one entry in `HEADS`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import timm
import torch
from torch import nn

from leukoscope.errors import ConfigError, ModelError
from leukoscope.registry import Registry

HeadBuilder = Callable[[int, int, int, float], nn.Module]
HEADS: Registry[HeadBuilder] = Registry("classifier head")


@HEADS.register("paper")
def paper_head(in_features: int, out_features: int, hidden: int, dropout: float) -> nn.Module:
    """The paper's head on pooled features: dense `hidden` + ReLU, then the output layer."""
    layers: list[nn.Module] = [nn.Linear(in_features, hidden), nn.ReLU(inplace=True)]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, out_features))
    return nn.Sequential(*layers)


@HEADS.register("linear")
def linear_head(in_features: int, out_features: int, hidden: int, dropout: float) -> nn.Module:
    """A plain linear probe (no hidden layer); `hidden` is ignored."""
    layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
    return nn.Sequential(*layers, nn.Linear(in_features, out_features))


class LeukoClassifier(nn.Module):
    """A timm backbone (num_classes=0, global average pooling) followed by a small head.

    `data_config` is timm's resolved input config of the backbone (input_size, mean, std, interpolation,
    crop_pct) so that backbone-normalised preprocessing needs no second lookup.
    """

    def __init__(
        self, backbone: nn.Module, head: nn.Module, num_classes: int, name: str, timm_kwargs: dict[str, Any]
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.num_classes = num_classes
        self.backbone_name = name
        self.timm_kwargs = dict(timm_kwargs)  # to rebuild the same backbone (e.g. with hub weights)
        self.weights_source = "none"
        self.data_config: dict[str, Any] = dict(timm.data.resolve_model_data_config(backbone))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.backbone(x))
        return logits.squeeze(-1) if self.num_classes == 2 else logits


def timm_kwargs_for(drop_rate: float) -> dict[str, Any]:
    """Arguments every backbone is built with; drop_rate only when set, since not every model takes it."""
    kwargs: dict[str, Any] = {"num_classes": 0, "global_pool": "avg"}
    if drop_rate > 0:
        kwargs["drop_rate"] = drop_rate
    return kwargs


def check_backbone(name: str) -> None:
    """Fail with one line and the closest timm names when `name` is not a timm model."""
    if timm.is_model(name):
        return
    names = timm.list_models()
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    close += [n for n in timm.list_models(f"*{name.split('.')[0]}*") if n not in close][: 5 - len(close)]
    hint = f"did you mean {', '.join(close)}? " if close else ""
    hint += f"list names with: python -c \"import timm; print(timm.list_models('*{name[:4].lower()}*'))\""
    raise ModelError(f"unknown backbone {name!r}", hint=hint)


def build_backbone(name: str, **kwargs: Any) -> nn.Module:
    check_backbone(name)
    try:
        return timm.create_model(name, pretrained=False, **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot build backbone {name!r} ({exc})") from None


def create_classifier(
    backbone: str,
    num_classes: int,
    weights: str = "none",
    head_hidden: int = 256,
    dropout: float = 0.0,
    drop_rate: float = 0.0,
    head: str = "paper",
) -> LeukoClassifier:
    """Build backbone + head and load `weights` (hub | bundled | none | a file or run directory)."""
    from leukoscope.models.weights import load_weights

    if num_classes < 2:
        raise ConfigError(f"a classifier needs at least 2 classes, got {num_classes}")
    if head_hidden < 1 or not 0.0 <= dropout < 1.0 or not 0.0 <= drop_rate < 1.0:
        raise ConfigError(
            f"bad head settings (head_hidden={head_hidden}, dropout={dropout}, drop_rate={drop_rate})",
            hint="head_hidden >= 1, dropout and drop_rate in [0, 1)",
        )
    kwargs = timm_kwargs_for(drop_rate)
    net = build_backbone(backbone, **kwargs)
    out = 1 if num_classes == 2 else num_classes
    model = LeukoClassifier(
        net, HEADS.get(head)(net.num_features, out, head_hidden, dropout), num_classes, backbone, kwargs
    )
    load_weights(model, weights)
    return model
