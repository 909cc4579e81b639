"""Subject-level bootstrap intervals for the workflow's tables, and paired differences between models.

Whole subjects are resampled with replacement, within each class (on C-NMC every subject holds cells of
one class, so a resample keeps the ALL / HEM mix of the test set), and each metric is recomputed from
the resample's confusion matrix. Every subject's confusion counts are summed once; a resample is then a
vector of subject multiplicities, so 1,000 resamples are one matrix product (milliseconds) instead of
1,000 scikit-learn calls. Two models scored on the same images share the resamples: the interval of
their difference is paired, which is what "focal hinge beats BCE by 1-5 points" needs.

Metrics (all from the confusion matrix, as `evaluate.metrics` defines them): `weighted_f1`, `accuracy`,
and for two classes `positive_precision`, `positive_recall`, `positive_f1` (of the positive class, ALL).
Where subjects are unknown each image is its own subject (an image-level bootstrap; reports say so).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from leukoscope.errors import DataError

LEVEL = 0.95


def metrics_from_confusion(cm: np.ndarray, positive_index: int | None) -> dict[str, np.ndarray]:
    """(..., C, C) confusion matrices (rows true, columns predicted) -> each metric, shape (...)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)
    predicted = cm.sum(axis=-2)
    total = support.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        out = {
            "weighted_f1": np.where(total > 0, (f1 * support).sum(axis=-1) / total, np.nan),
            "accuracy": np.where(total > 0, tp.sum(axis=-1) / total, np.nan),
        }
    if positive_index is not None:
        out["positive_precision"] = precision[..., positive_index]
        out["positive_recall"] = recall[..., positive_index]
        out["positive_f1"] = f1[..., positive_index]
    return out


class SubjectResampler:
    """The resamples of one set of images: subject multiplicities, stratified by the subject's class."""

    def __init__(
        self,
        y: np.ndarray,
        subjects: Sequence[str] | np.ndarray | None,
        *,
        n_boot: int = 1000,
        seed: int = 0,
    ) -> None:
        y = np.asarray(y, dtype=np.int64)
        if len(y) == 0:
            raise DataError("no labelled images to bootstrap")
        ids = np.arange(len(y)).astype(str) if subjects is None else np.asarray(subjects).astype(str)
        if len(ids) != len(y):
            raise DataError(f"bootstrap needs a subject for every image, got {len(ids)} for {len(y)}")
        self.y = y
        self.subject_names, self.subject_of = np.unique(ids, return_inverse=True)
        n_subjects = len(self.subject_names)
        majority = np.zeros(n_subjects, dtype=np.int64)
        for s in range(n_subjects):
            majority[s] = np.bincount(y[self.subject_of == s]).argmax()
        rng = np.random.default_rng(seed)
        self.weights = np.zeros((n_boot, n_subjects))
        for label in np.unique(majority):  # within each class, as many draws as it has subjects
            members = np.flatnonzero(majority == label)
            draws = rng.integers(0, len(members), size=(n_boot, len(members)))
            for b in range(n_boot):
                self.weights[b] += np.bincount(members[draws[b]], minlength=n_subjects)
        self.n_boot = n_boot
        self.n_subjects = n_subjects

    def subject_confusion(self, pred: np.ndarray, n_classes: int) -> np.ndarray:
        """(S, C*C): each subject's confusion counts, flattened."""
        cells = self.y * n_classes + np.asarray(pred, dtype=np.int64)
        flat = np.zeros((self.n_subjects, n_classes * n_classes))
        np.add.at(flat, (self.subject_of, cells), 1.0)
        return flat

    def metric_draws(
        self, pred: np.ndarray, n_classes: int, positive_index: int | None
    ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """(point estimates, {metric: (n_boot,) resampled values}) of one model's decisions."""
        flat = self.subject_confusion(pred, n_classes)
        point = metrics_from_confusion(flat.sum(axis=0).reshape(n_classes, n_classes), positive_index)
        draws = metrics_from_confusion(
            (self.weights @ flat).reshape(-1, n_classes, n_classes), positive_index
        )
        return {k: float(v) for k, v in point.items()}, draws


def interval(point: float, draws: np.ndarray, level: float = LEVEL) -> dict[str, Any]:
    valid = draws[~np.isnan(draws)]
    alpha = 1.0 - level
    low, high = (
        (float(np.quantile(valid, alpha / 2)), float(np.quantile(valid, 1 - alpha / 2)))
        if valid.size
        else (float("nan"), float("nan"))
    )
    return {"point": point, "low": low, "high": high, "level": level}


def bootstrap_intervals(
    resampler: SubjectResampler, pred: np.ndarray, n_classes: int, positive_index: int | None
) -> dict[str, dict[str, Any]]:
    """{metric: {point, low, high, level}} for one model's decisions."""
    point, draws = resampler.metric_draws(pred, n_classes, positive_index)
    return {k: interval(point[k], draws[k]) for k in point}


def paired_difference(
    resampler: SubjectResampler,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    n_classes: int,
    positive_index: int | None,
    metric: str = "weighted_f1",
) -> dict[str, Any]:
    """metric(a) - metric(b) on the same images, with its paired interval and the share of resamples
    where a is better (a bootstrap 'probability of superiority', not a p-value)."""
    point_a, draws_a = resampler.metric_draws(pred_a, n_classes, positive_index)
    point_b, draws_b = resampler.metric_draws(pred_b, n_classes, positive_index)
    diff = draws_a[metric] - draws_b[metric]
    out = interval(point_a[metric] - point_b[metric], diff)
    valid = diff[~np.isnan(diff)]
    out["share_better"] = float((valid > 0).mean()) if valid.size else float("nan")
    return out


def describe(ci: dict[str, Any], scale: float = 100.0, digits: int = 2) -> str:
    """'88.53 [86.10, 90.70]'."""
    if ci is None or ci.get("point") is None:
        return "n/a"
    return (
        f"{ci['point'] * scale:.{digits}f} [{ci['low'] * scale:.{digits}f}, {ci['high'] * scale:.{digits}f}]"
    )
