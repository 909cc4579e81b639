"""Classification metrics, with the challenge's weighted F1 first.

Cells of one subject are not independent, so per-subject accuracy (and a subject-level majority vote) is
reported beside the per-cell numbers: a model can look good per cell while failing whole patients.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from leukoscope.errors import DataError


def label_indices(y_true: Sequence[Any] | np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """Class names (str) or indices (int) -> int indices into `class_names`; unknown labels are an error."""
    values = np.asarray(y_true)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    if np.issubdtype(values.dtype, np.integer):
        bad = values[(values < 0) | (values >= len(class_names))]
        if bad.size:
            raise DataError(f"label index {int(bad[0])} is outside the {len(class_names)} classes")
        return values.astype(np.int64)
    lookup = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({str(v) for v in values} - set(lookup))
    if unknown:
        raise DataError(
            f"labels {', '.join(map(repr, unknown[:5]))} are not classes of the model",
            hint=f"the model knows: {', '.join(class_names)}",
        )
    return np.array([lookup[str(v)] for v in values], dtype=np.int64)


def predict_indices(
    probs: np.ndarray, class_names: Sequence[str], threshold: float = 0.5, positive_class: str | None = None
) -> np.ndarray:
    """`decide` with the positive class given by name."""
    return decide(probs, threshold, positive_index(class_names, positive_class))


def decide(probs: np.ndarray, threshold: float = 0.5, positive_index: int = 1) -> np.ndarray:
    """Two classes: P(positive) >= threshold; N classes: argmax (the threshold does not apply)."""
    probs = np.asarray(probs)
    if probs.shape[1] == 2:
        return np.where(probs[:, positive_index] >= threshold, positive_index, 1 - positive_index)
    return probs.argmax(axis=1)


def positive_index(class_names: Sequence[str], positive_class: str | None) -> int:
    return list(class_names).index(positive_class) if positive_class else 1


def compute_metrics(
    y_true: Sequence[Any] | np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    threshold: float = 0.5,
    subjects: Sequence[str] | np.ndarray | None = None,
    positive_class: str | None = None,
) -> dict[str, Any]:
    """Every number a report needs, as plain JSON-able values.

    `probs` is (N, C) in `class_names` order (a (N,) vector is read as P(positive) of two classes).
    """
    class_names = list(class_names)
    probs = _as_probs(probs, class_names, positive_class)
    y = label_indices(y_true, class_names)
    if len(y) != len(probs):
        raise ValueError(f"{len(y)} labels for {len(probs)} predictions")
    if len(y) == 0:
        raise DataError("no labelled images to evaluate", hint="check the split and the labels")
    pred = predict_indices(probs, class_names, threshold, positive_class)
    labels = list(range(len(class_names)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=0
    )
    out: dict[str, Any] = {
        "n": len(y),
        "weighted_f1": float(skm.f1_score(y, pred, labels=labels, average="weighted", zero_division=0)),
        "macro_f1": float(skm.f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": _balanced_accuracy(y, pred),
        "roc_auc": roc_auc(y, probs, class_names, positive_class),
        "class_names": class_names,
        "threshold": float(threshold) if len(class_names) == 2 else None,
        "positive_class": (positive_class or class_names[1]) if len(class_names) == 2 else None,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": skm.confusion_matrix(y, pred, labels=labels).tolist(),
    }
    if subjects is not None:
        out.update(subject_metrics(y, pred, np.asarray(subjects, dtype=str), class_names))
    return out


def _as_probs(probs: np.ndarray, class_names: list[str], positive_class: str | None) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1 and len(class_names) == 2:
        pos = positive_index(class_names, positive_class)
        full = np.empty((len(probs), 2))
        full[:, pos], full[:, 1 - pos] = probs, 1.0 - probs
        return full
    if probs.ndim != 2 or probs.shape[1] != len(class_names):
        raise ValueError(f"probs of shape {probs.shape} do not match {len(class_names)} classes")
    return probs


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes present in y ; classes only predicted do not count."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(skm.balanced_accuracy_score(y, pred))


def roc_auc(
    y: np.ndarray, probs: np.ndarray, class_names: Sequence[str], positive_class: str | None = None
) -> float | None:
    """Binary AUC of P(positive); macro one-vs-rest for N > 2. None when a class is absent (undefined)."""
    present = np.unique(y)
    if len(class_names) == 2:
        if len(present) < 2:
            return None
        pos = positive_index(class_names, positive_class)
        return float(skm.roc_auc_score(y == pos, probs[:, pos]))
    if len(present) < len(class_names):
        return None
    return float(
        skm.roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=list(range(len(class_names))))
    )


def subject_metrics(
    y: np.ndarray, pred: np.ndarray, subjects: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy per subject, their mean, and the accuracy of one majority-vote call per subject."""
    per_subject: dict[str, dict[str, Any]] = {}
    votes_right = 0
    for subject in sorted(set(subjects.tolist())):
        mask = subjects == subject
        truth = _majority(y[mask], len(class_names))
        vote = _majority(pred[mask], len(class_names))
        votes_right += int(truth == vote)
        per_subject[subject] = {
            "n": int(mask.sum()),
            "accuracy": float((y[mask] == pred[mask]).mean()),
            "label": class_names[truth],
            "majority_vote": class_names[vote],
        }
    accuracies = [s["accuracy"] for s in per_subject.values()]
    return {
        "n_subjects": len(per_subject),
        "subject_mean_accuracy": float(np.mean(accuracies)),
        "subject_majority_accuracy": votes_right / len(per_subject),
        "per_subject": per_subject,
    }


def _majority(values: np.ndarray, num_classes: int) -> int:
    """The most frequent index; ties go to the lower index (deterministic)."""
    return int(np.bincount(values, minlength=num_classes).argmax())
