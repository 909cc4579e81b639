"""Real blood cells (pbc-mini, CC BY 4.0, Acevedo et al. 2020): the Keras engine learns two of its classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from .conftest import run_cli

pytestmark = [pytest.mark.shared, pytest.mark.slow]


def test_simplecnn_tells_lymphocytes_from_neutrophils(shared_data: Path, tmp_path: Path) -> None:
    config = tmp_path / "pbc.yaml"
    config.write_text(yaml.safe_dump({"preprocess": {"crop": "center", "image_size": 64}}))
    out = tmp_path / "run"
    result = run_cli(
        "train", "--config", str(config), "--data", str(shared_data / "pbc-mini"),
        "--classes", "lymphocyte,neutrophil", "--backbone", "simplecnn", "--weights", "none",
        "--epochs", "8", "--batch-size", "16", "--lr", "1e-3", "--deterministic", "--out", str(out),
        "--cache-dir", str(tmp_path / "cache"), "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 40  # 20% of 200 images held out (each image its own subject)
    assert metrics["weighted_f1"] >= 0.85, metrics
