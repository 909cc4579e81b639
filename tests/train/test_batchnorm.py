"""BatchNorm statistics recomputed from training batches: the exact average of the batches' moments, and
a fit whose validation sees them."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from leukoscope.train.batchnorm import BatchNormRefresh, batchnorm_layers, recompute_statistics


def _model(momentum: float = 0.99) -> keras.Model:
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, use_bias=False, name="dense")(inputs)
    x = keras.layers.BatchNormalization(momentum=momentum, name="bn")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(x))


@pytest.mark.parametrize("momentum", [0.99, 0.9])
def test_statistics_are_the_mean_of_the_batch_moments(momentum: float) -> None:
    model = _model(momentum)
    rng = np.random.default_rng(0)
    batches = [rng.normal(k, 1.0 + k, (16, 4)).astype("float32") for k in range(3)]
    assert recompute_statistics(model, batches) == 3
    kernel = model.get_layer("dense").kernel.numpy()
    features = [b @ kernel for b in batches]
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([f.mean(0) for f in features], 0), rtol=1e-4)
    np.testing.assert_allclose(
        bn.moving_variance.numpy(), np.mean([f.var(0) for f in features], 0), rtol=1e-4
    )
    assert bn.momentum == momentum  # the layer is left as it was


def test_frozen_and_nested_layers() -> None:
    inner = _model()
    outer = keras.Sequential([keras.Input((4,)), inner])
    assert [layer.name for layer in batchnorm_layers(outer)] == ["bn"]
    inner.get_layer("bn").trainable = False
    assert batchnorm_layers(outer) == []
    assert recompute_statistics(outer, [np.ones((2, 4), "float32")]) == 0


def test_refresh_runs_before_each_validation_of_fit_only() -> None:
    model = _model()
    model.compile("adam", "mse")
    seen: list[int] = []
    rng = np.random.default_rng(1)

    def batches(epoch: int, step: int) -> tuple[np.ndarray, None]:
        seen.append(epoch)
        return rng.normal(5.0, 2.0, (8, 4)).astype("float32"), None

    refresh = BatchNormRefresh(batches, steps=2)
    x, y = rng.normal(size=(16, 4)).astype("float32"), np.zeros((16, 1), "float32")
    model.fit(x, y, epochs=2, validation_data=(x, y), callbacks=[refresh], verbose=0)
    assert seen == [0, 0, 1, 1]
    model.evaluate(x, y, callbacks=[refresh], verbose=0)  # outside fit: statistics left alone
    assert seen == [0, 0, 1, 1]
    assert np.abs(model.get_layer("bn").moving_mean.numpy()).max() > 1.0  # the refresh batches' mean
