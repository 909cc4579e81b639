"""WeightedF1 is the challenge's metric (scikit-learn's weighted F1), from logits, for 2 and N classes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from leukoscope.train.callbacks import WeightedF1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_logits_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 50)
    logits = rng.normal(size=(50, 1)).astype(np.float32) + (y[:, None] - 0.5)
    metric = WeightedF1(2)
    metric.update_state(y[:30], logits[:30])  # two batches accumulate
    metric.update_state(y[30:], logits[30:])
    expected = f1_score(y, (logits[:, 0] > 0).astype(int), average="weighted")
    assert float(metric.result()) == pytest.approx(expected, abs=1e-6)
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_multiclass_and_an_absent_class() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 40)
    logits = rng.normal(size=(40, 4)).astype(np.float32)  # class 3 never true, sometimes predicted
    metric = WeightedF1(4)
    metric.update_state(y, logits)
    expected = f1_score(y, logits.argmax(1), average="weighted", labels=[0, 1, 2, 3], zero_division=0)
    assert float(metric.result()) == pytest.approx(expected, abs=1e-6)


def test_serialises_for_the_resume_checkpoint() -> None:
    import keras

    again = keras.metrics.deserialize(keras.metrics.serialize(WeightedF1(3, name="weighted_f1")))
    assert isinstance(again, WeightedF1) and again.num_classes == 3
