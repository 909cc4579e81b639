"""One saved model per session (simplecnn at 32 px) and its Keras predictor."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import make_model_dir


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("simplecnn"))


@pytest.fixture(scope="session")
def predictor(model_dir: Path):
    from leukoscope.infer.predictor import load_predictor

    return load_predictor(model_dir, backend="keras", precision="fp32")
