"""Subject-level bootstrap confidence intervals.

Images of one subject are correlated (same patient, same smear, same day), so resampling images would
understate uncertainty. We resample SUBJECTS with replacement (all their images come along), recompute the
metric, and report the percentile interval. Where subjects are unknown, each image is its own subject and
this reduces to the ordinary image bootstrap (reports say so via `subject_known`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from leukoscope.errors import ConfigError, DataError
from leukoscope.evaluate.metrics import decide

BOOTSTRAP_METRICS = ("weighted_f1", "roc_auc", "accuracy", "balanced_accuracy")


def metric_value(
    name: str, y: np.ndarray, probs: np.ndarray, pred: np.ndarray, positive_index: int = 1
) -> float:
    """One metric on (a resample of) the data, defined as in `evaluate.metrics`; NaN where undefined."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

    n_classes = probs.shape[1]
    if name == "weighted_f1":
        return float(f1_score(y, pred, average="weighted", labels=np.arange(n_classes), zero_division=0))
    if name == "accuracy":
        return float(accuracy_score(y, pred))
    if name == "balanced_accuracy":
        return float(balanced_accuracy_score(y, pred)) if len(np.unique(y)) > 1 else float("nan")
    if name in ("roc_auc", "auc"):
        present = np.unique(y)
        if len(present) < 2:
            return float("nan")
        if n_classes == 2:
            return float(roc_auc_score(y == positive_index, probs[:, positive_index]))
        if len(present) < n_classes:
            return float("nan")
        return float(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    raise ConfigError(
        f"unknown bootstrap metric {name!r}", hint=f"choose from {', '.join(BOOTSTRAP_METRICS)}"
    )


def bootstrap_ci(
    y_true: Sequence[int] | np.ndarray,
    probs: np.ndarray,
    subjects: Sequence[str] | np.ndarray | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    threshold: float = 0.5,
    positive_index: int = 1,
    metrics: Sequence[str] = ("weighted_f1", "roc_auc"),
) -> dict[str, dict[str, Any]]:
    """{metric: {point, low, high, n_boot, n_valid, n_subjects, level}} from subject resampling.

    `y_true` holds class indices; `probs` (N, C). `n_valid` counts resamples where the metric was defined.
    """
    y = np.asarray(y_true).astype(int).ravel()
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(y) or len(y) == 0:
        raise DataError(f"bootstrap needs (N, C) probabilities for N labels, got {probs.shape} / {len(y)}")
    if n_boot < 1:
        raise ConfigError(f"--bootstrap must be at least 1, got {n_boot}")
    groups = _subject_groups(subjects, len(y))
    pred = decide(probs, threshold, positive_index)
    rng = np.random.default_rng(seed)
    samples = {m: np.full(n_boot, np.nan) for m in metrics}
    for b in range(n_boot):
        chosen = rng.integers(0, len(groups), size=len(groups))
        idx = np.concatenate([groups[i] for i in chosen])
        for m in metrics:
            samples[m][b] = metric_value(m, y[idx], probs[idx], pred[idx], positive_index)
    return {
        m: _interval(metric_value(m, y, probs, pred, positive_index), samples[m], alpha, n_boot, len(groups))
        for m in metrics
    }


def _subject_groups(subjects: Sequence[str] | np.ndarray | None, n: int) -> list[np.ndarray]:
    if subjects is None:
        return [np.array([i]) for i in range(n)]
    subjects = np.asarray(subjects).astype(str)
    if len(subjects) != n:
        raise DataError(f"bootstrap needs a subject for every image, got {len(subjects)} for {n}")
    _, inverse = np.unique(subjects, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    splits = np.flatnonzero(np.diff(inverse[order])) + 1
    return np.split(order, splits)


def _interval(point: float, values: np.ndarray, alpha: float, n_boot: int, n_subjects: int) -> dict[str, Any]:
    valid = values[~np.isnan(values)]
    low, high = (
        (float(np.quantile(valid, alpha / 2)), float(np.quantile(valid, 1 - alpha / 2)))
        if valid.size
        else (float("nan"), float("nan"))
    )
    return {
        "point": point,
        "low": low,
        "high": high,
        "level": 1 - alpha,
        "n_boot": n_boot,
        "n_valid": int(valid.size),
        "n_subjects": n_subjects,
    }


def format_ci(ci: dict[str, Any], scale: float = 100.0, digits: int = 2) -> str:
    """'91.94 [90.10, 93.50]' for reports."""
    return (
        f"{ci['point'] * scale:.{digits}f} [{ci['low'] * scale:.{digits}f}, {ci['high'] * scale:.{digits}f}]"
    )
