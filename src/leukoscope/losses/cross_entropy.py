"""Cross-entropy losses: plain, inverse-frequency weighted (the paper) and class-balanced (Cui et al.)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from leukoscope.losses.base import LOSSES, PairLoss, check_classes, check_counts, check_number


@LOSSES.register("bce")
class BCELoss(PairLoss):
    """Two classes: mean -[y log σ(x) + (1 - y) log(1 - σ(x))].

    N classes: cross-entropy, mean -log softmax(x)_y.
    """

    name = "bce"

    def binary(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, targets)

    def multiclass(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets)


class _ClassWeightedCE(PairLoss):
    """Cross-entropy with a per-sample weight W[class of the sample], averaged over samples.

    The mean is over samples (as Keras' class_weight does), not over the summed weights as torch's
    `cross_entropy(weight=...)` default does, so two-class and N-class runs are weighted alike.
    """

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("class_weights", weights.float(), persistent=False)

    def binary(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check_classes(self.name, self.class_weights, 2)
        w0, w1 = self.class_weights[0], self.class_weights[1]
        weight = w1 * targets + w0 * (1 - targets)
        return (weight * F.binary_cross_entropy_with_logits(logits, targets, reduction="none")).mean()

    def multiclass(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check_classes(self.name, self.class_weights, logits.shape[1])
        return (self.class_weights[targets] * F.cross_entropy(logits, targets, reduction="none")).mean()


@LOSSES.register("weighted_bce")
class WeightedBCELoss(_ClassWeightedCE):
    """The paper's weighted BCE: W_i = N / (c * n_i), n_i training images of class i, N = Σ n_i, c classes.

    loss = mean_j W_{y_j} * BCE(x_j, y_j); with N classes, mean_j W_{y_j} * CE(x_j, y_j).
    Equal to W_0 * BCEWithLogits(pos_weight=W_1 / W_0) for two classes.
    """

    name = "weighted_bce"

    def __init__(self, class_counts: Sequence[int] | None = None) -> None:
        counts = torch.tensor(check_counts(self.name, class_counts), dtype=torch.float64)
        super().__init__(counts.sum() / (len(counts) * counts))


@LOSSES.register("balanced_bce")
class BalancedBCELoss(_ClassWeightedCE):
    """Class-balanced BCE (Cui et al. 2019): W_i ∝ (1 - β) / (1 - β^n_i), scaled so Σ W_i = c.

    The 'effective number' (1 - β^n) / (1 - β) saturates for large classes; β = 0 gives plain BCE and
    β -> 1 approaches inverse-frequency weights.
    """

    name = "balanced_bce"

    def __init__(self, class_counts: Sequence[int] | None = None, beta: float = 0.999) -> None:
        counts = torch.tensor(check_counts(self.name, class_counts), dtype=torch.float64)
        beta = check_number(self.name, "beta", beta, 0.0, 1.0, "[)")
        raw = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts))
        super().__init__(raw / raw.sum() * len(counts))
        self.beta = beta
