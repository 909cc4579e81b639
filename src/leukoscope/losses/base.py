"""The loss registry and the shape contract every loss shares (Keras' `Loss(y_true, y_pred)`).

y_pred are the model's logits: (B, 1) or (B,) for two classes, where sigmoid(logit) = P(positive class)
(the paper's "Dense 1 sigmoid" with the sigmoid inside the loss, as Keras' `from_logits=True` does), and
(B, N) for N classes. y_true: {0, 1} (two classes) or class indices (N classes). Every loss returns one
value per sample; Keras averages them (sample and class weights included). Losses compute in float32,
also under a mixed-precision policy.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from leukoscope.errors import ConfigError
from leukoscope.registry import Registry

PACKAGE = "leukoscope"


class PairLoss(keras.losses.Loss):
    """Dispatches on the logits' last axis, so one name serves two and N classes."""

    loss_name = "loss"

    def __init__(
        self, name: str | None = None, reduction: str = "sum_over_batch_size", **kwargs: Any
    ) -> None:
        super().__init__(name=name or self.loss_name, reduction=reduction, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        logits = ops.cast(y_pred, "float32")
        if len(logits.shape) == 1:
            logits = ops.expand_dims(logits, -1)
        if logits.shape[-1] == 1:
            targets = ops.reshape(ops.cast(y_true, "float32"), (-1,))
            return self.binary(logits[:, 0], targets)
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        return self.multiclass(logits, labels)

    def binary(self, logits: Any, targets: Any) -> Any:
        """Two classes: logits (B,), float targets in {0, 1} -> (B,) losses."""
        raise NotImplementedError

    def multiclass(self, logits: Any, labels: Any) -> Any:
        """N classes: logits (B, N), int class indices (B,) -> (B,) losses."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The constructor arguments (what `get_config` saves beside name and reduction)."""
        return {}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self.params()}


LOSSES: Registry[type[PairLoss]] = Registry("loss")


def register(name: str) -> Any:
    """Register a loss under `name` in LeukoScope's registry and Keras' serialisation registry."""

    def decorator(cls: type[PairLoss]) -> type[PairLoss]:
        cls.loss_name = name
        keras.saving.register_keras_serializable(package=PACKAGE, name=name)(cls)
        return LOSSES.register(name)(cls)

    return decorator


def get_loss(name: str, **params: Any) -> PairLoss:
    """Build a registered loss; an unknown name or parameter is one ConfigError line."""
    cls = LOSSES.get(name)
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = inspect.signature(cls.__init__).parameters.values()
    accepted = [p.name for p in parameters if p.kind in named and p.name not in ("self", "name", "reduction")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        hint = f"its parameters: {', '.join(accepted)}" if accepted else "it takes no parameters"
        raise ConfigError(f"loss {name!r} has no parameter {unknown[0]!r}", hint=hint)
    return cls(**params)


def list_losses() -> list[str]:
    return LOSSES.names()


def check_counts(name: str, class_counts: Sequence[int] | None) -> list[int]:
    """Training-set images per class (index order); every count must be a positive whole number."""
    if class_counts is None:
        raise ConfigError(
            f"loss {name!r} needs class_counts", hint="pass the training images per class, e.g. [10778, 9272]"
        )
    if (
        isinstance(class_counts, str | bytes)
        or len(class_counts) < 2
        or not all(
            isinstance(n, int | np.integer) and not isinstance(n, bool) and n > 0 for n in class_counts
        )
    ):
        raise ConfigError(
            f"loss {name!r}: class_counts must list at least 2 positive whole numbers, got {class_counts!r}"
        )
    return [int(n) for n in class_counts]


def check_classes(name: str, weights: Sequence[float], num_classes: int) -> None:
    if len(weights) != num_classes:
        raise ConfigError(
            f"loss {name!r} has {len(weights)} class weights but the model has {num_classes} classes",
            hint="give class_counts for every class, in class-index order",
        )


def check_number(name: str, param: str, value: Any, low: float, high: float, closed: str = "[]") -> float:
    """`value` as a float in the interval low..high (closed says which ends are included)."""
    ok_type = isinstance(value, int | float) and not isinstance(value, bool)
    low_ok = ok_type and (value >= low if closed[0] == "[" else value > low)
    high_ok = ok_type and (value <= high if closed[1] == "]" else value < high)
    if not (low_ok and high_ok):
        interval = f"{closed[0]}{low}, {high}{closed[1]}"
        raise ConfigError(f"loss {name!r}: {param} must be a number in {interval}, got {value!r}")
    return float(value)


def bce_with_logits(logits: Any, targets: Any) -> Any:
    """Per-element binary cross-entropy on logits, in the stable form max(x, 0) - x t + log(1 + e^-|x|)."""
    return ops.relu(logits) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))


def log_softmax_at(logits: Any, labels: Any) -> Any:
    """log softmax(logits)[label] per row."""
    log_p = ops.log_softmax(logits, axis=-1)
    return ops.sum(log_p * ops.one_hot(labels, logits.shape[-1]), axis=-1)
