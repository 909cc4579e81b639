"""Hinge losses on a margin y * y_pred with y in {-1, +1}: hinge, squared hinge and the paper's focal hinge.

y_pred is the raw logit by default (on="logit"). on="sigmoid" reproduces the paper's Keras set-up: Keras'
`hinge` maps 0/1 labels to -1/+1 but uses y_pred as given, i.e. the sigmoid output p in [0, 1] (not
2p - 1), so a negative sample never reaches zero loss (1 + p >= 1).
N classes: one-vs-rest over the N outputs (one-hot targets -> ±1), mean over the N outputs.
"""

from __future__ import annotations

from typing import Any, Literal

from keras import ops

from leukoscope.errors import ConfigError
from leukoscope.losses.base import PairLoss, check_number, register

On = Literal["logit", "sigmoid"]


def pow_positive(margin: Any, gamma: float) -> Any:
    """margin ** gamma for margin >= 0 whose gradient stays finite at 0 when gamma < 1."""
    positive = margin > 0
    safe = ops.where(positive, margin, ops.ones_like(margin))
    return ops.where(positive, ops.power(safe, gamma), ops.zeros_like(margin))


class _MarginLoss(PairLoss):
    """Shared by the hinge family: builds max(0, 1 - y * y_pred) and reduces f(margin) per sample."""

    def __init__(self, on: On = "logit", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if on not in ("logit", "sigmoid"):
            raise ConfigError(f"loss {self.loss_name!r}: on must be 'logit' or 'sigmoid', got {on!r}")
        self.on = on

    def _pred(self, logits: Any) -> Any:
        return ops.sigmoid(logits) if self.on == "sigmoid" else logits

    def binary(self, logits: Any, targets: Any) -> Any:
        y = 2.0 * targets - 1.0
        return self.reduce(ops.relu(1.0 - y * self._pred(logits)))

    def multiclass(self, logits: Any, labels: Any) -> Any:
        y = 2.0 * ops.one_hot(labels, logits.shape[-1]) - 1.0
        return ops.mean(self.reduce(ops.relu(1.0 - y * self._pred(logits))), axis=-1)

    def reduce(self, margin: Any) -> Any:
        """Element-wise loss from the clipped margins max(0, 1 - y * y_pred)."""
        raise NotImplementedError


@register("hinge")
class HingeLoss(_MarginLoss):
    """max(0, 1 - y * y_pred), or with squared=True max(0, 1 - y * y_pred)^2."""

    def __init__(self, squared: bool = False, on: On = "logit", **kwargs: Any) -> None:
        super().__init__(on, **kwargs)
        if not isinstance(squared, bool):
            raise ConfigError(f"loss 'hinge': squared must be true or false, got {squared!r}")
        self.squared = squared

    def params(self) -> dict[str, Any]:
        return {"squared": self.squared, "on": self.on}

    def reduce(self, margin: Any) -> Any:
        return ops.square(margin) if self.squared else margin


@register("focal_hinge")
class FocalHingeLoss(_MarginLoss):
    """The paper's Focal Hinge Loss: (1 / (2γ - 1)) * max(0, 1 - y * y_pred)^γ.

    γ must exceed 0.5: the 1 / (2γ - 1) factor divides by zero at 0.5 and turns the loss negative below.
    γ = 1 is the hinge loss; γ = 2 is the squared hinge divided by 3.
    """

    def __init__(self, gamma: float = 2.0, on: On = "logit", **kwargs: Any) -> None:
        super().__init__(on, **kwargs)
        self.gamma = check_number(self.loss_name, "gamma", gamma, 0.5, float("inf"), "()")

    def params(self) -> dict[str, Any]:
        return {"gamma": self.gamma, "on": self.on}

    def reduce(self, margin: Any) -> Any:
        return pow_positive(margin, self.gamma) / (2.0 * self.gamma - 1.0)
