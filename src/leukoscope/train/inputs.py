"""What a training job reads (`FitInputs`) and what follows from it alone: the class-count loss
parameters, Keras class weights, the history file's name. Shared by `fit` (which builds and finishes a
job) and `session` (which runs it), so neither imports the other back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from leukoscope.config import PreprocessConfig, RunConfig
from leukoscope.train.tfdata import ImageSource

NEEDS_CLASS_COUNTS = ("weighted_bce", "balanced_bce")
HISTORY = "history.csv"


@dataclass
class FitInputs:
    """Everything a training job reads: images with labels, classes, and the resolved preprocessing."""

    train: ImageSource
    val: ImageSource
    class_names: list[str]
    preprocess: PreprocessConfig  # mean/std resolved from the training set
    positive_class: str | None = None
    fingerprint: str = ""  # identity of the input data (files, sizes, times): part of the resume key
    data_summary: dict[str, Any] = field(default_factory=dict)

    @property
    def binary(self) -> bool:
        return len(self.class_names) == 2

    @property
    def positive_index(self) -> int:
        """Two classes: the index of the class the sigmoid stands for (target 1); 'all' is index 0 on
        C-NMC, so targets are not the class indices."""
        if self.positive_class in self.class_names:
            return self.class_names.index(self.positive_class)
        return 1


def in_target_order(counts: list[int], binary: bool, positive: int) -> list[int]:
    """Class counts in the loss's target order: two classes [negative, positive]; else class order."""
    counts = [int(c) for c in counts]
    return [counts[1 - positive], counts[positive]] if binary else counts


def class_counts_param(cfg: RunConfig, counts: list[int]) -> dict[str, Any]:
    """The loss parameters, with the training set's class counts for the class-weighted losses."""
    params = dict(cfg.loss.params)
    if cfg.loss.name in NEEDS_CLASS_COUNTS and "class_counts" not in params:
        params["class_counts"] = list(counts)
    return params


def class_weights(counts: list[int]) -> dict[int, float]:
    """Keras class_weight for train.balance=class_weight: W_i = N / (c n_i), like weighted_bce; keyed by
    target (`counts` in target order)."""
    n = np.asarray(counts, dtype=np.float64)
    return {i: float(n.sum() / (len(n) * v)) for i, v in enumerate(n) if v > 0}
