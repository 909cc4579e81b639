"""Hinge losses on a margin y * y_pred with y in {-1, +1}: hinge, squared hinge and the paper's focal hinge.

y_pred is the raw logit by default (on="logit"). on="sigmoid" reproduces the paper's Keras set-up: Keras'
`hinge` maps 0/1 labels to -1/+1 but uses y_pred as given, i.e. the sigmoid output p in [0, 1] (not
2p - 1), so a negative sample never reaches zero loss (1 + p >= 1).
N classes: one-vs-rest over the N outputs (one-hot targets -> ±1), mean over all B * N elements.
"""

from __future__ import annotations

import abc
from typing import Literal

import torch
import torch.nn.functional as F

from leukoscope.errors import ConfigError
from leukoscope.losses.base import LOSSES, PairLoss, check_number

On = Literal["logit", "sigmoid"]


def _pow_pos(margin: torch.Tensor, gamma: float) -> torch.Tensor:
    """margin ** gamma for margin >= 0 whose gradient stays finite at 0 when gamma < 1."""
    positive = margin > 0
    safe = torch.where(positive, margin, torch.ones_like(margin))
    return torch.where(positive, safe**gamma, torch.zeros_like(margin))


class _MarginLoss(PairLoss):
    """Shared by the hinge family: builds max(0, 1 - y * y_pred) and reduces f(margin) to a mean."""

    def __init__(self, on: On = "logit") -> None:
        super().__init__()
        if on not in ("logit", "sigmoid"):
            raise ConfigError(f"loss {self.name!r}: on must be 'logit' or 'sigmoid', got {on!r}")
        self.on = on

    def _pred(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.on == "sigmoid" else logits

    def binary(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        y = 2 * targets - 1
        return self.reduce(F.relu(1 - y * self._pred(logits)))

    def multiclass(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        y = 2 * F.one_hot(targets, logits.shape[1]).to(logits.dtype) - 1
        return self.reduce(F.relu(1 - y * self._pred(logits)))

    @abc.abstractmethod
    def reduce(self, margin: torch.Tensor) -> torch.Tensor:
        """Mean loss from the clipped margins max(0, 1 - y * y_pred)."""


@LOSSES.register("hinge")
class HingeLoss(_MarginLoss):
    """mean max(0, 1 - y * y_pred), or with squared=True mean max(0, 1 - y * y_pred)^2."""

    name = "hinge"

    def __init__(self, squared: bool = False, on: On = "logit") -> None:
        super().__init__(on)
        if not isinstance(squared, bool):
            raise ConfigError(f"loss 'hinge': squared must be true or false, got {squared!r}")
        self.squared = squared

    def reduce(self, margin: torch.Tensor) -> torch.Tensor:
        return (margin**2 if self.squared else margin).mean()


@LOSSES.register("focal_hinge")
class FocalHingeLoss(_MarginLoss):
    """The paper's Focal Hinge Loss: mean (1 / (2γ - 1)) * max(0, 1 - y * y_pred)^γ.

    γ must exceed 0.5: the 1 / (2γ - 1) factor divides by zero at 0.5 and turns the loss negative below.
    γ = 1 is the hinge loss; γ = 2 is the squared hinge divided by 3.
    """

    name = "focal_hinge"

    def __init__(self, gamma: float = 2.0, on: On = "logit") -> None:
        super().__init__(on)
        self.gamma = check_number(self.name, "gamma", gamma, 0.5, float("inf"), "()")

    def reduce(self, margin: torch.Tensor) -> torch.Tensor:
        return _pow_pos(margin, self.gamma).mean() / (2 * self.gamma - 1)
