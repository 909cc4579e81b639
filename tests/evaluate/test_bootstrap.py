"""Subject-level bootstrap: intervals contain the estimate and shrink with more subjects."""

from __future__ import annotations

import numpy as np
import pytest

from leukoscope.evaluate.bootstrap import bootstrap_ci, format_ci
from leukoscope.evaluate.metrics import compute_metrics


def _data(n_subjects: int, per_subject: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each subject has its own difficulty, so images of a subject are correlated (as in real data)."""
    rng = np.random.default_rng(seed)
    y, probs, subjects = [], [], []
    for s in range(n_subjects):
        label = s % 2
        skill = rng.normal(1.2, 1.0)
        z = rng.normal(skill * (1 if label else -1), 1.0, per_subject)
        p = 1 / (1 + np.exp(-z))
        y += [label] * per_subject
        probs += list(p)
        subjects += [f"s{s}"] * per_subject
    p = np.array(probs)
    return np.array(y), np.stack([1 - p, p], axis=1), np.array(subjects)


def test_interval_contains_point_and_matches_metrics() -> None:
    y, probs, subjects = _data(20, 15, 0)
    ci = bootstrap_ci(y, probs, subjects, n_boot=300, seed=1)
    ref = compute_metrics(y, probs, ["hem", "all"])
    for name, key in (("weighted_f1", "weighted_f1"), ("roc_auc", "roc_auc")):
        assert ci[name]["point"] == pytest.approx(ref[key])
        assert ci[name]["low"] <= ci[name]["point"] <= ci[name]["high"]
        assert ci[name]["low"] < ci[name]["high"]
        assert ci[name]["n_subjects"] == 20
    assert "[" in format_ci(ci["weighted_f1"])


def test_width_shrinks_with_more_subjects() -> None:
    widths = []
    for n_subjects in (8, 120):
        y, probs, subjects = _data(n_subjects, 10, 3)
        ci = bootstrap_ci(y, probs, subjects, n_boot=300, seed=0)
        widths.append(ci["weighted_f1"]["high"] - ci["weighted_f1"]["low"])
    assert widths[1] < widths[0] / 2


def test_seeded_and_subject_level() -> None:
    y, probs, subjects = _data(10, 30, 4)
    a = bootstrap_ci(y, probs, subjects, n_boot=200, seed=7)
    b = bootstrap_ci(y, probs, subjects, n_boot=200, seed=7)
    assert a == b
    # ignoring subjects (image bootstrap) understates the uncertainty of correlated images
    images = bootstrap_ci(y, probs, None, n_boot=200, seed=7)
    width = lambda c: c["weighted_f1"]["high"] - c["weighted_f1"]["low"]  # noqa: E731
    assert width(images) < width(a)
