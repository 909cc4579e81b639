"""Focal loss (Lin et al. 2017): down-weights easy examples by (1 - p_t)^γ."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from leukoscope.errors import ConfigError
from leukoscope.losses.base import LOSSES, PairLoss, check_number


@LOSSES.register("focal")
class FocalLoss(PairLoss):
    """Two classes: mean of α_t (1 - p_t)^γ BCE(x, y), p = σ(x), p_t = p if y = 1 else 1 - p,
    α_t = α if y = 1 else 1 - α (α = None: no α_t). Same as torchvision's sigmoid_focal_loss(mean).

    N classes: softmax focal, mean of -α_t (1 - p_t)^γ log p_t with p_t = softmax(x)_y; α_t = 1 (None),
    α (a number, a constant scale) or α[y] (a list of per-class weights).
    """

    name = "focal"

    def __init__(self, alpha: float | Sequence[float] | None = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = check_number(self.name, "gamma", gamma, 0.0, float("inf"), "[)")
        self.alpha: float | None = None
        if isinstance(alpha, Sequence) and not isinstance(alpha, str):
            weights = [check_number(self.name, "alpha", a, 0.0, float("inf"), "[)") for a in alpha]
            self.register_buffer("class_alpha", torch.tensor(weights), persistent=False)
        else:
            self.class_alpha = None
            if alpha is not None:
                self.alpha = check_number(self.name, "alpha", alpha, 0.0, 1.0)

    def binary(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.class_alpha is not None:
            raise ConfigError("loss 'focal': with two classes alpha is one number in [0, 1] or None")
        p = torch.sigmoid(logits)
        ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        p_t = p * targets + (1 - p) * (1 - targets)
        loss = ce * (1 - p_t) ** self.gamma
        if self.alpha is not None:
            loss = (self.alpha * targets + (1 - self.alpha) * (1 - targets)) * loss
        return loss.mean()

    def multiclass(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p_t = F.log_softmax(logits, dim=1).gather(1, targets[:, None])[:, 0]
        loss = -((1 - log_p_t.exp()) ** self.gamma) * log_p_t
        if self.class_alpha is not None:
            if self.class_alpha.numel() != logits.shape[1]:
                raise ConfigError(
                    f"loss 'focal' has {self.class_alpha.numel()} alpha weights for {logits.shape[1]} classes"
                )
            loss = self.class_alpha[targets] * loss
        elif self.alpha is not None:
            loss = self.alpha * loss
        return loss.mean()
