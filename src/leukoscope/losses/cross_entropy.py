"""Cross-entropy losses: plain, inverse-frequency weighted (the paper) and class-balanced (Cui et al.)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from keras import ops

from leukoscope.losses.base import (
    PairLoss,
    bce_with_logits,
    check_classes,
    check_counts,
    check_number,
    log_softmax_at,
    register,
)


@register("bce")
class BCELoss(PairLoss):
    """Two classes: -[y log σ(x) + (1 - y) log(1 - σ(x))]. N classes: cross-entropy -log softmax(x)_y."""

    def binary(self, logits: Any, targets: Any) -> Any:
        return bce_with_logits(logits, targets)

    def multiclass(self, logits: Any, labels: Any) -> Any:
        return -log_softmax_at(logits, labels)


class _ClassWeightedCE(PairLoss):
    """Cross-entropy times a per-sample weight W[class of the sample], averaged over samples.

    The mean is over samples (as Keras' class_weight does), not over the summed weights.
    """

    class_weights: list[float]

    def binary(self, logits: Any, targets: Any) -> Any:
        check_classes(self.loss_name, self.class_weights, 2)
        w0, w1 = self.class_weights
        return (w1 * targets + w0 * (1.0 - targets)) * bce_with_logits(logits, targets)

    def multiclass(self, logits: Any, labels: Any) -> Any:
        check_classes(self.loss_name, self.class_weights, logits.shape[-1])
        weights = ops.take(ops.convert_to_tensor(self.class_weights, dtype="float32"), labels)
        return -weights * log_softmax_at(logits, labels)


@register("weighted_bce")
class WeightedBCELoss(_ClassWeightedCE):
    """The paper's weighted BCE: W_i = N / (c * n_i), n_i training images of class i, N = Σ n_i, c classes."""

    def __init__(self, class_counts: Sequence[int] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        counts = np.asarray(check_counts(self.loss_name, class_counts), dtype=np.float64)
        self.class_counts = [int(n) for n in counts]
        self.class_weights = (counts.sum() / (len(counts) * counts)).tolist()

    def params(self) -> dict[str, Any]:
        return {"class_counts": self.class_counts}


@register("balanced_bce")
class BalancedBCELoss(_ClassWeightedCE):
    """Class-balanced BCE (Cui et al. 2019): W_i ∝ (1 - β) / (1 - β^n_i), scaled so Σ W_i = c.

    The 'effective number' (1 - β^n) / (1 - β) saturates for large classes; β = 0 gives plain BCE and
    β -> 1 approaches inverse-frequency weights.
    """

    def __init__(self, class_counts: Sequence[int] | None = None, beta: float = 0.999, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        counts = np.asarray(check_counts(self.loss_name, class_counts), dtype=np.float64)
        self.beta = check_number(self.loss_name, "beta", beta, 0.0, 1.0, "[)")
        self.class_counts = [int(n) for n in counts]
        raw = (1.0 - self.beta) / (1.0 - np.power(self.beta, counts))
        self.class_weights = (raw / raw.sum() * len(counts)).tolist()

    def params(self) -> dict[str, Any]:
        return {"class_counts": self.class_counts, "beta": self.beta}
