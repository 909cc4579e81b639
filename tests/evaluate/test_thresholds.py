"""Decision thresholds: exact max-F1 search, sensitivity targets, and tuned-on-val applied on test."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from leukoscope.errors import ConfigError, DataError
from leukoscope.evaluate.thresholds import (
    parse_threshold_spec,
    refuse_test_split,
    sensitivity_specificity,
    tune_threshold,
    weighted_f1_curve,
)


def _scores(n: int, seed: int, shift: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Positives' probabilities sit lower than 0.5 on average: 0.5 is a bad threshold for this model."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    p = np.clip(rng.normal(0.2 + shift * y, 0.08), 0, 1)
    return y, p


def _wf1(y: np.ndarray, p: np.ndarray, t: float) -> float:
    return f1_score(y, (p >= t).astype(int), average="weighted")


def test_max_f1_curve_matches_sklearn_at_every_cut() -> None:
    y, p = _scores(200, 0)
    p = np.round(p, 2)  # ties
    f1, thresholds = weighted_f1_curve(y, p)
    for value, t in zip(f1, thresholds, strict=True):
        assert value == pytest.approx(_wf1(y, p, t), abs=1e-12)


def test_max_f1_beats_every_grid_threshold() -> None:
    y, p = _scores(300, 1)
    t = tune_threshold(y, p, "max-f1")
    best = _wf1(y, p, t)
    assert best >= max(_wf1(y, p, g) for g in np.linspace(0, 1, 201)) - 1e-12
    assert best > _wf1(y, p, 0.5) + 0.05  # the fixed threshold is clearly worse on this model


def test_tuned_on_validation_generalises_to_test() -> None:
    y_val, p_val = _scores(400, 2)
    y_test, p_test = _scores(400, 3)
    t = tune_threshold(y_val, p_val, "max-f1")
    assert _wf1(y_test, p_test, t) > _wf1(y_test, p_test, 0.5) + 0.05


@pytest.mark.parametrize("target", [0.8, 0.95, 1.0])
def test_sensitivity_target_is_met_with_the_highest_threshold(target: float) -> None:
    y, p = _scores(250, 4)
    t = tune_threshold(y, p, f"sensitivity:{target}")
    sens, _ = sensitivity_specificity(y, p, t)
    assert sens >= target
    above = np.nextafter(t, 1.0)
    assert sensitivity_specificity(y, p, above)[0] < target  # any higher threshold misses the target


def test_sensitivity_of_the_negative_class() -> None:
    y, p = _scores(250, 5)
    t = tune_threshold(y, p, "sensitivity:0.9", target_positive=False)
    _, spec = sensitivity_specificity(y, p, t)  # specificity of the positive = sensitivity of the other
    assert spec >= 0.9
    assert sensitivity_specificity(y, p, np.nextafter(t, 0.0))[1] < 0.9


def test_specs_and_errors() -> None:
    assert tune_threshold(np.array([0, 1]), np.array([0.1, 0.9]), "fixed") == 0.5
    assert tune_threshold(np.array([0, 1]), np.array([0.1, 0.9]), "0.3") == 0.3
    with pytest.raises(ConfigError):
        parse_threshold_spec("best")
    with pytest.raises(ConfigError):
        parse_threshold_spec("sensitivity:1.5")
    with pytest.raises(DataError):
        tune_threshold(np.array([1, 1]), np.array([0.2, 0.8]), "max-f1")
    with pytest.raises(ConfigError, match="test split"):
        refuse_test_split(["train", "final"])
    with pytest.raises(ConfigError, match="test split"):
        refuse_test_split(["fold_0", "prelim"])  # C-NMC's labelled preliminary test set
    refuse_test_split(["fold_2", ""])
