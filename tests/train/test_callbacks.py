"""WeightedF1 is the challenge's metric (scikit-learn's weighted F1), from logits, for 2 and N classes;
Throughput tells the first (tracing / compiling) step from the steady ones."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from leukoscope.train.callbacks import Throughput, WeightedF1


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


def test_throughput_times_the_first_step_apart_from_the_steady_ones() -> None:
    """A first step made 1 s slower (as a trace / compile makes it) is first_step_s, not in the steady
    rate; the steady steps are every later one over both epochs."""
    import time

    import keras

    class SlowFirstStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if not getattr(self, "done", False):
                self.done = True
                time.sleep(1.0)

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    throughput = Throughput(batch_size=8)
    x, y = np.zeros((24, 4), np.float32), np.zeros((24, 1), np.float32)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[SlowFirstStep(), throughput])
    timing = throughput.timing()
    assert timing is not None and timing["first_step_s"] >= 1.0
    assert timing["steady_steps"] == 5 and timing["epochs_timed"] == 2  # 2 epochs x 3 steps, less the first
    assert throughput.steady_seconds < 1.0 and timing["fit_s"] >= 1.0
    assert timing["steady_images_per_s"] == pytest.approx(5 * 8 / throughput.steady_seconds, rel=1e-3)
    assert len(history.history["images_per_s"]) == 2
    assert Throughput(8).timing() is None  # no step trained (a finished state resumed): nothing to say
