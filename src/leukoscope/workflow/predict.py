"""Class probabilities of a model folder for the workflow's cropped splits (uint8 NHWC memmaps).

The model is `load_model` + `probability_model` (the card's temperature, classes in the card's order):
the same Keras path `leukoscope predict` takes. `eager` runs batch by batch without graph tracing
(tracing DenseNet201 costs more than a few hundred tiny images take); otherwise `model.predict` over a
tf.data stream, so a split is never converted to float32 as a whole.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]


def load_probabilities(
    model_dir: str | Path, *, eager: bool = False, batch_size: int = 64
) -> tuple[Predict, Any]:
    """(images -> (N, C) float32 probabilities, the model card)."""
    from leukoscope.models.card import load_model
    from leukoscope.models.factory import probability_model
    from leukoscope.train.input import ImageSource, evaluation_dataset

    model, card = load_model(model_dir)
    probs_model = probability_model(model, card.temperature, card.positive_index)

    def predict(images: np.ndarray) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, card.num_classes), dtype=np.float32)
        if eager:
            out = [
                np.asarray(
                    probs_model(np.asarray(images[i : i + batch_size], dtype=np.float32), training=False)
                )
                for i in range(0, len(images), batch_size)
            ]
            return np.concatenate(out).astype(np.float32)
        source = ImageSource.from_array(images, np.arange(len(images)), np.zeros(len(images), dtype=np.int64))
        data = evaluation_dataset(source, batch_size, binary=card.num_classes == 2, labels=False)
        return np.asarray(probs_model.predict(data, verbose=0), dtype=np.float32)

    return predict, card
