"""Calibration: ECE against a hand computation, and temperature scaling fixing an over-confident model."""

from __future__ import annotations

import numpy as np
import pytest

from leukoscope.evaluate.calibration import (
    apply_temperature,
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    reliability_diagram,
)


def _calibrated_logits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(logit): a perfectly calibrated two-class model."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return z, y


def test_ece_by_hand() -> None:
    probs = np.array([[0.1, 0.9], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([1, 0, 0, 1])
    # top-label confidences 0.9, 0.8, 0.6, 0.7 in 10 bins -> 4 bins of one image; correct 1, 0, 1, 1
    expected = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.6) + abs(1 - 0.7)) / 4
    assert expected_calibration_error(y, probs, n_bins=10) == pytest.approx(expected)
    # positive-class mode: P(pos) 0.9, 0.8, 0.4, 0.7 vs outcome 1, 0, 0, 1
    pos = (abs(1 - 0.9) + abs(0 - 0.8) + abs(0 - 0.4) + abs(1 - 0.7)) / 4
    assert expected_calibration_error(y, probs, n_bins=10, mode="positive") == pytest.approx(pos)


def test_temperature_scaling_lowers_ece_of_an_overconfident_model() -> None:
    z_val, y_val = _calibrated_logits(4000, 0)
    z_test, y_test = _calibrated_logits(4000, 1)
    t = fit_temperature(z_val * 10.0, y_val)  # the model's logits are 10x too large
    assert t == pytest.approx(10.0, rel=0.15)
    before = expected_calibration_error(y_test, apply_temperature(z_test * 10.0, 1.0))
    after = expected_calibration_error(y_test, apply_temperature(z_test * 10.0, t))
    assert before > 0.1
    assert after < before / 3
    # ranking is untouched: the predicted classes are the same
    assert (apply_temperature(z_test * 10, t).argmax(1) == apply_temperature(z_test * 10, 1).argmax(1)).all()


def test_multiclass_temperature() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 1.5, (3000, 4))
    p = apply_temperature(logits, 1.0)
    y = np.array([rng.choice(4, p=row) for row in p])
    assert fit_temperature(logits * 5.0, y) == pytest.approx(5.0, rel=0.2)
    assert fit_temperature(logits, y) == pytest.approx(1.0, rel=0.2)


def test_reliability_diagram_png(tmp_path) -> None:
    z, y = _calibrated_logits(300, 3)
    out = tmp_path / "rel.png"
    data = reliability_diagram(y, apply_temperature(z, 1.0), out, mode="positive")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.read_bytes() == data
    summary = calibration_summary(y, apply_temperature(z, 1.0))
    assert {"ece", "ece_positive", "brier", "mce"} <= set(summary)
    assert 0 <= summary["ece"] < 0.1
