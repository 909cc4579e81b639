"""Monte-Carlo dropout for ensemble members (after Yang & Staib's C-NMC 2019 entry).

Each member runs `mc_samples` times with its dropout layers active and every image gets, per member, the
mean of those samples weighted by the member's confidence on THAT image: the inverse predictive variance of
the samples (`inverse-variance`) or one minus the normalised entropy of their mean (`entropy`). Only plain
dropout is switched on: batch norm and stochastic depth stay in inference mode. The masks come from seeded
generators that each pass resets, so the same spec gives the same answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

VAR_EPS = 1e-4  # keeps a member whose samples agree exactly from taking all the weight of every image


class MCDropout:
    """Factory of the always-on dropout layer MC sampling uses (built lazily: Keras loads on first use)."""

    _cls: Any = None

    @classmethod
    def layer(cls, rate: float, seed: int, name: str) -> Any:
        if cls._cls is None:
            import keras

            class AlwaysDropout(keras.layers.Layer):
                """Dropout that drops at inference too, from its own seeded generator (reset per pass)."""

                def __init__(self, rate: float, seed: int = 0, **kwargs: Any) -> None:
                    super().__init__(**kwargs)
                    self.rate = float(rate)
                    self.generator = keras.random.SeedGenerator(seed)

                def call(self, inputs: Any) -> Any:
                    return keras.random.dropout(inputs, self.rate, seed=self.generator)

                def reset(self, seed: int) -> None:
                    state = self.generator.state
                    state.assign(np.asarray([seed, 0], dtype=state.dtype))

            cls._cls = AlwaysDropout
        return cls._cls(rate, seed, name=name)


def mc_dropout_model(model: Any, p: float, seed: int = 0) -> tuple[Any, list[Any], bool]:
    """(model whose dropout layers always drop, those layers, whether one had to be inserted).

    Only plain dropout is switched on: batch normalisation stays in inference mode, and per-sample
    dropout (`noise_shape`, EfficientNet's stochastic depth) stays off. Every other layer is shared with
    `model` (same weights). A model without dropout gets `Dropout(p)` before its `logits` layer.
    """
    import keras

    from leukoscope.models.factory import LOGITS_NAME

    made: list[Any] = []

    def clone(layer: Any) -> Any:
        if isinstance(layer, keras.layers.Dropout) and layer.rate > 0 and layer.noise_shape is None:
            made.append(MCDropout.layer(layer.rate, seed, f"{layer.name}_mc"))
            return made[-1]
        return layer

    mc = keras.models.clone_model(model, clone_function=clone)
    if made:
        return mc, made, False
    logits = model.get_layer(LOGITS_NAME)
    drop = MCDropout.layer(p, seed, "mc_dropout_inserted")
    return keras.Model(model.input, logits(drop(logits.input))), [drop], True


def member_confidence(samples: np.ndarray, kind: str) -> np.ndarray:
    """(T, N, C) Monte-Carlo samples -> (N,) confidence per image (higher = more trusted)."""
    if kind == "inverse-variance":
        return 1.0 / (samples.var(axis=0).mean(axis=1) + VAR_EPS)
    mean = np.clip(samples.mean(axis=0), 1e-12, 1.0)
    entropy = -(mean * np.log(mean)).sum(axis=1) / np.log(mean.shape[1])
    return np.clip(1.0 - entropy, 1e-6, None)
