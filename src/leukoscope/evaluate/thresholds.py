"""Two-class decision thresholds: fixed, or tuned on VALIDATION data only.

A threshold tuned on the test split would make the test score optimistic, so every function here takes
validation labels/probabilities and nothing else; the CLI refuses a `--val` dataset whose split is a test
split (`refuse_test_split`). The chosen threshold is stored in the model card (`card.threshold`) and
applied by inference to P(positive class): `P >= threshold` -> positive.

Specs: `fixed` (0.5), a number (`0.42`), `max-f1` (maximise weighted F1), `sensitivity:0.95` (the highest
threshold whose sensitivity for the target class, ALL by default, is at least 0.95 -> best specificity at
that sensitivity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from leukoscope.errors import ConfigError, DataError

TEST_SPLITS = ("test", "testing", "prelim", "final")  # as `data.splits.make_splits` reads them


@dataclass(frozen=True)
class ThresholdSpec:
    method: str  # fixed | value | max-f1 | sensitivity
    value: float = 0.5  # the fixed value, or the target sensitivity


def parse_threshold_spec(spec: str) -> ThresholdSpec:
    """`fixed` | `0.37` | `max-f1` | `sensitivity:0.95` -> ThresholdSpec (a ConfigError otherwise)."""
    text = spec.strip().lower()
    if text in ("fixed", "none", ""):
        return ThresholdSpec("fixed", 0.5)
    if text in ("max-f1", "f1", "max_f1"):
        return ThresholdSpec("max-f1")
    if text.startswith("sensitivity:") or text.startswith("sens:"):
        target = _number(text.split(":", 1)[1], spec)
        if not 0.0 < target <= 1.0:
            raise ConfigError(f"target sensitivity {target} is not in (0, 1]", hint="e.g. sensitivity:0.95")
        return ThresholdSpec("sensitivity", target)
    value = _number(text, spec)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"threshold {value} is not in [0, 1]")
    return ThresholdSpec("value", value)


def _number(text: str, spec: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(
            f"unknown threshold {spec!r}", hint="use fixed, max-f1, sensitivity:0.95 or a number in [0, 1]"
        ) from None


def refuse_test_split(splits: list[str] | set[str] | np.ndarray, what: str = "--val") -> None:
    """Tuning on a test split leaks it into the model: refuse it loudly."""
    bad = sorted({str(s) for s in splits} & set(TEST_SPLITS))
    if bad:
        raise ConfigError(
            f"{what} data is a test split ({', '.join(bad)}); thresholds and temperatures are tuned on "
            "validation data only",
            hint="pass a validation set (e.g. --val-split fold_2, or a manifest of held-out images)",
        )


def tune_threshold(
    y_val: np.ndarray, p_val: np.ndarray, spec: str | ThresholdSpec, target_positive: bool = True
) -> float:
    """Threshold on P(positive) from validation labels (1 = positive) and probabilities.

    `target_positive` says whether a sensitivity target refers to the positive class (True) or to the
    other class (False, e.g. when the sigmoid stands for `hem` and the target is ALL sensitivity).
    """
    spec = parse_threshold_spec(spec) if isinstance(spec, str) else spec
    if spec.method in ("fixed", "value"):
        return float(spec.value)
    y, p = _check(y_val, p_val)
    if spec.method == "max-f1":
        return max_weighted_f1_threshold(y, p)
    if target_positive:
        return sensitivity_threshold(y, p, spec.value)
    return _negative_sensitivity_threshold(y, p, spec.value)


def _check(y_val: np.ndarray, p_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_val).astype(int).ravel()
    p = np.asarray(p_val, dtype=np.float64).ravel()
    if y.shape != p.shape or y.size == 0:
        raise DataError(f"threshold tuning needs matching labels and probabilities, got {y.size} / {p.size}")
    if len(np.unique(y)) < 2:
        raise DataError(
            "threshold tuning needs both classes in the validation data", hint="use a larger --val"
        )
    return y, p


def max_weighted_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """Exact search over every cut between distinct probabilities (O(N log N), no grid)."""
    f1, thresholds = weighted_f1_curve(y, p)
    return float(thresholds[int(np.argmax(f1))])


def weighted_f1_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted F1 (support-weighted mean of both classes' F1) for every distinct cut, with its threshold."""
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    n, n_pos = len(y), int(y.sum())
    n_neg = n - n_pos
    # cut k: the top k images are predicted positive; only cut where the next probability differs
    last_of_run = np.r_[np.flatnonzero(np.diff(ps) != 0), n - 1]
    ks = np.r_[0, last_of_run + 1]
    tp = np.r_[0, np.cumsum(ys)][ks]
    fp = ks - tp
    fn = n_pos - tp
    tn = n_neg - fp
    f1_pos = _safe_div(2 * tp, 2 * tp + fp + fn)
    f1_neg = _safe_div(2 * tn, 2 * tn + fn + fp)
    weighted = (n_pos * f1_pos + n_neg * f1_neg) / n
    upper = np.r_[1.0, ps][ks]  # lowest probability still predicted positive (1.0 for k = 0)
    lower = np.r_[ps, 0.0][ks]  # highest probability predicted negative (0.0 for k = n)
    thresholds = np.where(ks == 0, np.nextafter(ps[0], np.inf), (upper + lower) / 2)
    thresholds = np.where(ks == n, 0.0, thresholds)
    return weighted, np.clip(thresholds, 0.0, 1.0)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def sensitivity_threshold(y: np.ndarray, p: np.ndarray, target: float) -> float:
    """The highest threshold with sensitivity (positives with P >= t) at least `target`."""
    pos = np.sort(p[y == 1])[::-1]
    k = max(1, math.ceil(target * len(pos) - 1e-9))
    return float(pos[k - 1])


def _negative_sensitivity_threshold(y: np.ndarray, p: np.ndarray, target: float) -> float:
    """The lowest threshold with at least `target` of negatives below it (predicted negative)."""
    neg = np.sort(p[y == 0])
    k = max(1, math.ceil(target * len(neg) - 1e-9))
    return float(min(1.0, np.nextafter(neg[k - 1], np.inf)))


def sensitivity_specificity(y: np.ndarray, p: np.ndarray, threshold: float) -> tuple[float, float]:
    y = np.asarray(y).astype(int)
    pred = np.asarray(p) >= threshold
    sens = float(pred[y == 1].mean()) if (y == 1).any() else float("nan")
    spec = float((~pred[y == 0]).mean()) if (y == 0).any() else float("nan")
    return sens, spec


def tune_for_classes(
    spec: str | ThresholdSpec,
    y_val: np.ndarray,
    probs_val: np.ndarray,
    class_names: list[str],
    positive_class: str | None,
    current: float = 0.5,
) -> float:
    """The threshold on P(positive) for a two-class model from validation class indices and (N, 2) probs.

    A sensitivity target refers to the ALL class when the model has one (whichever class the sigmoid
    stands for), otherwise to the positive class. `fixed` keeps `current`.
    """
    spec = parse_threshold_spec(spec) if isinstance(spec, str) else spec
    if spec.method == "fixed":
        return current
    if len(class_names) != 2:
        raise ConfigError("a decision threshold applies to two-class models only")
    pos = class_names.index(positive_class) if positive_class else 1
    target_positive = not ("all" in class_names and class_names[pos] != "all")
    y = (np.asarray(y_val) == pos).astype(int)
    return tune_threshold(y, np.asarray(probs_val)[:, pos], spec, target_positive)
