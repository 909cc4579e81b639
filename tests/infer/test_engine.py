"""`InferenceEngine`'s compiled path: same answers as eager, two static shapes, eager when compiling fails."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from leukoscope.infer.engine import InferenceEngine, cpu_supports_bf16
from leukoscope.models.card import load_model
from leukoscope.preprocess import preprocess_image

from .helpers import cell_image, make_model_dir


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, object, np.ndarray]:
    model_dir = make_model_dir(
        tmp_path_factory.mktemp("tiny"), backbone="test_efficientnet", weights="none", size=32
    )
    model, card = load_model(model_dir)
    images = np.stack([preprocess_image(cell_image(i), card.preprocess) for i in range(13)])
    return model, card, images


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compiled_matches_eager(tiny: tuple, precision: str) -> None:
    model, card, images = tiny
    if precision == "bf16" and not cpu_supports_bf16():
        pytest.skip("this CPU has no fast bf16")
    fp32 = InferenceEngine(model, card, precision="fp32", batch_size=8).predict_arrays(images)
    compiled = InferenceEngine(model, card, precision=precision, batch_size=8, compile=True)
    assert compiled.compiled
    probs = compiled.predict_arrays(images)  # 8 + 5 (padded to 8)
    single = compiled.predict_arrays(images[:1])
    assert compiled.compiled  # it really ran compiled, no silent fallback
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(single, probs[:1], atol=1e-2 if precision == "bf16" else 1e-5)
    if precision == "fp32":
        assert np.allclose(probs, fp32, atol=1e-4)
    else:  # bf16 rounds (this random model amplifies it): decisions agree wherever fp32 is not borderline
        confident = np.abs(fp32[:, 0] - 0.5) > 0.15
        assert confident.sum() >= 5
        assert ((probs[:, 0] >= 0.5) == (fp32[:, 0] >= 0.5))[confident].all()
        eager = InferenceEngine(model, card, precision="bf16", batch_size=8).predict_arrays(images)
        assert np.abs(probs - fp32).mean() <= 1.5 * np.abs(eager - fp32).mean() + 0.02  # as close as eager


def test_partial_batches_are_padded_to_two_shapes(tiny: tuple) -> None:
    model, card, images = tiny
    engine = InferenceEngine(model, card, precision="fp32", batch_size=8)
    shapes: list[int] = []

    def recording(x: torch.Tensor) -> torch.Tensor:
        shapes.append(x.shape[0])
        return model(x)

    engine.compiled, engine._forward = True, recording
    probs = engine.predict_arrays(images)
    engine.predict_arrays(images[:1])
    engine.predict_arrays(images[:3])
    assert shapes == [8, 8, 1, 8] and len(probs) == 13
    eager = InferenceEngine(model, card, precision="fp32", batch_size=8).predict_arrays(images)
    assert np.allclose(probs, eager, atol=1e-5)  # padding rows never leak into real ones


def test_a_failed_compile_falls_back_to_eager(tiny: tuple, caplog: pytest.LogCaptureFixture) -> None:
    model, card, images = tiny
    engine = InferenceEngine(model, card, precision="fp32", batch_size=8)

    def broken(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("no C++ compiler found\nsecond line")

    engine.compiled, engine._forward = True, broken
    with caplog.at_level(logging.WARNING):
        probs = engine.predict_arrays(images)
    assert not engine.compiled and "no C++ compiler found" in caplog.text
    eager = InferenceEngine(model, card, precision="fp32", batch_size=8).predict_arrays(images)
    assert np.allclose(probs, eager, atol=1e-6)


def test_onnx_refuses_compile(tmp_path: Path, model_dir: Path) -> None:
    from leukoscope.errors import ConfigError
    from leukoscope.infer.predictor import load_predictor

    with pytest.raises(ConfigError, match="torch backend only"):
        load_predictor(model_dir, backend="onnx", compile=True)
