"""The loss registry and the shape contract every loss shares.

Two classes: logits (B,) (or (B, 1)), targets (B,) in {0, 1} with y = 1 the positive class.
N classes: logits (B, N), targets (B,) long class indices. Every loss returns the mean over the batch.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from leukoscope.errors import ConfigError
from leukoscope.registry import Registry


class PairLoss(nn.Module, abc.ABC):
    """(logits, targets) -> mean loss; dispatches on the logits' shape so one name serves 2 and N classes."""

    name = "loss"

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()  # losses in fp32 even under bf16 autocast
        if logits.ndim == 2 and logits.shape[1] == 1:
            logits = logits[:, 0]
        if logits.ndim == 1:
            _check_targets(logits, targets)
            return self.binary(logits, targets.to(logits.dtype))
        if logits.ndim == 2:
            _check_targets(logits[:, 0], targets)
            return self.multiclass(logits, targets.long())
        raise ValueError(f"{self.name}: logits must be (B,) or (B, N), got {tuple(logits.shape)}")

    @abc.abstractmethod
    def binary(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Two classes: logits (B,), float targets in {0, 1}."""

    @abc.abstractmethod
    def multiclass(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """N classes: logits (B, N), long class indices."""


LOSSES: Registry[type[PairLoss]] = Registry("loss")


def _check_targets(first: torch.Tensor, targets: torch.Tensor) -> None:
    if targets.shape != first.shape:
        raise ValueError(f"targets must have shape {tuple(first.shape)}, got {tuple(targets.shape)}")


def get_loss(name: str, **params: Any) -> PairLoss:
    """Build a registered loss; an unknown name or parameter is one ConfigError line."""
    cls = LOSSES.get(name)
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = inspect.signature(cls.__init__).parameters.values()
    accepted = [p.name for p in parameters if p.kind in named and p.name != "self"]
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
        or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in class_counts)
    ):
        raise ConfigError(
            f"loss {name!r}: class_counts must list at least 2 positive whole numbers, got {class_counts!r}"
        )
    return list(class_counts)


def check_classes(name: str, weights: torch.Tensor, num_classes: int) -> None:
    if weights.numel() != num_classes:
        raise ConfigError(
            f"loss {name!r} has {weights.numel()} class weights but the model has {num_classes} classes",
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
