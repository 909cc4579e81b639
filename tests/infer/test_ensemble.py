"""The ensemble as a predictor: how member probabilities combine, and the Monte-Carlo dropout model.

(Ensembles built from trained runs and fitted on validation data: tests/experiments/test_ensemble.py.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from leukoscope.infer.ensemble import combine
from leukoscope.infer.mc_dropout import mc_dropout_model, member_confidence
from leukoscope.models.card import load_model
from leukoscope.preprocess.pipeline import preprocess_image

from .helpers import cell_image, make_model_dir


def test_combination_rules() -> None:
    probs = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.5, 0.5], [0.6, 0.4]]])  # (M=2, N=2, C=2)
    assert np.allclose(combine(probs), probs.mean(axis=0))
    assert np.allclose(combine(probs, np.array([1.0, 0.0])), probs[0])
    per_image = np.array([[1.0, 0.0], [0.0, 1.0]])  # image 0 trusts member 0, image 1 member 1
    assert np.allclose(combine(probs, per_image), [probs[0, 0], probs[1, 1]])
    steady = np.tile([[0.8, 0.2]], (5, 1, 1))  # (T=5, N=1, C=2): samples agree
    shaky = np.array([[[0.9, 0.1]], [[0.3, 0.7]], [[0.8, 0.2]], [[0.2, 0.8]], [[0.7, 0.3]]])
    for kind in ("inverse-variance", "entropy"):
        assert member_confidence(steady, kind)[0] > member_confidence(shaky, kind)[0]


def test_mc_dropout_keeps_batch_norm_in_inference_mode(tmp_path: Path) -> None:
    """Only dropout is switched on: with p close to 0 the MC model is the plain model (BN statistics are
    not recomputed from the batch), and a model that has dropout keeps its own layer and rate."""
    model, card = load_model(make_model_dir(tmp_path / "drop", dropout=0.3))
    batch = np.stack([preprocess_image(cell_image(i), card.preprocess) for i in range(6)]).astype(np.float32)
    mc, layers, inserted = mc_dropout_model(model, 0.2)
    assert not inserted and [layer.name for layer in layers] == ["head_dropout_mc"] and layers[0].rate == 0.3
    assert not np.allclose(np.asarray(mc(batch)), np.asarray(model(batch, training=False)))
    tiny, _, inserted = mc_dropout_model(load_model(make_model_dir(tmp_path / "plain"))[0], 1e-7)
    plain = load_model(tmp_path / "plain")[0]
    assert inserted
    np.testing.assert_allclose(np.asarray(tiny(batch)), np.asarray(plain(batch, training=False)), atol=1e-5)
