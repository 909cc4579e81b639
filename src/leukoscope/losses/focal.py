"""Focal loss (Lin et al. 2017): down-weights easy examples by (1 - p_t)^γ."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras import ops

from leukoscope.errors import ConfigError
from leukoscope.losses.base import PairLoss, bce_with_logits, check_number, log_softmax_at, register


@register("focal")
class FocalLoss(PairLoss):
    """Two classes: α_t (1 - p_t)^γ BCE(x, y), p = σ(x), p_t = p if y = 1 else 1 - p, α_t = α if y = 1
    else 1 - α (α = None: no α_t); the same as torchvision's sigmoid_focal_loss and Keras'
    BinaryFocalCrossentropy(apply_class_balancing=True, from_logits=True).

    N classes: softmax focal, -α_t (1 - p_t)^γ log p_t with p_t = softmax(x)_y; α_t = 1 (None), α (a number,
    a constant scale) or α[y] (a list of per-class weights).
    """

    def __init__(
        self, alpha: float | Sequence[float] | None = 0.25, gamma: float = 2.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.gamma = check_number(self.loss_name, "gamma", gamma, 0.0, float("inf"), "[)")
        self.alpha: float | list[float] | None
        if isinstance(alpha, Sequence) and not isinstance(alpha, str):
            self.alpha = [check_number(self.loss_name, "alpha", a, 0.0, float("inf"), "[)") for a in alpha]
        else:
            self.alpha = None if alpha is None else check_number(self.loss_name, "alpha", alpha, 0.0, 1.0)

    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "gamma": self.gamma}

    def binary(self, logits: Any, targets: Any) -> Any:
        if isinstance(self.alpha, list):
            raise ConfigError("loss 'focal': with two classes alpha is one number in [0, 1] or None")
        p = ops.sigmoid(logits)
        p_t = p * targets + (1.0 - p) * (1.0 - targets)
        loss = bce_with_logits(logits, targets) * ops.power(1.0 - p_t, self.gamma)
        if self.alpha is not None:
            loss = (self.alpha * targets + (1.0 - self.alpha) * (1.0 - targets)) * loss
        return loss

    def multiclass(self, logits: Any, labels: Any) -> Any:
        log_p_t = log_softmax_at(logits, labels)
        loss = -ops.power(1.0 - ops.exp(log_p_t), self.gamma) * log_p_t
        if isinstance(self.alpha, list):
            if len(self.alpha) != logits.shape[-1]:
                raise ConfigError(
                    f"loss 'focal' has {len(self.alpha)} alpha weights for {logits.shape[-1]} classes"
                )
            loss = ops.take(ops.convert_to_tensor(self.alpha, dtype="float32"), labels) * loss
        elif self.alpha is not None:
            loss = self.alpha * loss
        return loss
