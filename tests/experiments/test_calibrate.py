"""`calibrate`: temperature and threshold fitted on validation, stored in the card, used by inference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from leukoscope.cli.main import app
from leukoscope.experiments._data import labelled_table
from leukoscope.infer.batches import table_images
from leukoscope.models.card import load_model, save_model


def _overconfident(run: Path, factor: float) -> None:
    """Multiply the logits layer by `factor`: the same ranking, logits `factor` times too large."""
    model, card = load_model(run)
    layer = model.get_layer("logits")
    layer.set_weights([w * factor for w in layer.get_weights()])
    save_model(run, model, card)


@pytest.fixture
def val_manifest(fold_runs: list[Path], prelim_manifest: Path, tmp_path: Path) -> Path:
    """Fold 0's validation images (unseen by the fold-0 run) + the preliminary test images."""
    splits = pd.read_csv(fold_runs[0] / "splits.csv", keep_default_na=False)
    fold0 = splits[splits["split"] == "val"][["path", "label", "subject"]]
    both = pd.concat([fold0, pd.read_csv(prelim_manifest, keep_default_na=False)])
    path = tmp_path / "val.csv"
    both.to_csv(path, index=False)
    return path


def test_calibrate_lowers_ece_and_updates_the_card(
    member_runs: list[Path], val_manifest: Path, cache_dir: Path
) -> None:
    from leukoscope.experiments.calibrate import calibrate_run
    from leukoscope.infer.predictor import load_predictor

    run = member_runs[0]
    _overconfident(run, 30.0)
    result = calibrate_run(run, val_manifest, threshold="max-f1", cache_dir=str(cache_dir))
    assert result["temperature"] > 3.0
    assert result["after"]["ece"] < result["before"]["ece"]
    assert result["after"]["nll"] < result["before"]["nll"]
    card = json.loads((run / "model_card.json").read_text())
    assert card["temperature"] == pytest.approx(result["temperature"])
    assert card["threshold"] == pytest.approx(result["threshold"])
    assert (run / "calibration" / "reliability_after.png").is_file()
    predictor = load_predictor(run, backend="keras", precision="fp32")  # inference now applies T
    loaded = predictor.card
    table = labelled_table(val_manifest, loaded.class_names)
    images = table_images(table, loaded.preprocess, cache_dir).array
    logits = predictor.logits(np.array(images))
    expected = 1 / (1 + np.exp(-logits / result["temperature"]))
    assert np.allclose(
        predictor.predict_arrays(np.array(images))[:, loaded.positive_index], expected, atol=1e-5
    )


def test_calibrate_cli_sensitivity_target(
    member_runs: list[Path], val_manifest: Path, cache_dir: Path
) -> None:
    args = [
        "calibrate",
        str(member_runs[0]),
        "--val",
        str(val_manifest),
        "--tune-threshold",
        "sensitivity:0.9",
    ]
    result = CliRunner().invoke(app, [*args, "--cache-dir", str(cache_dir), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["threshold_method"] == "sensitivity:0.9" and out["temperature"] > 0


def test_calibrate_refuses_a_test_split(
    member_runs: list[Path], prelim_manifest: Path, tmp_path: Path
) -> None:
    test_csv = tmp_path / "test.csv"
    pd.read_csv(prelim_manifest).assign(split="test").to_csv(test_csv, index=False)
    exe = Path(sys.executable).with_name("leukoscope")  # the installed console script
    cmd = [str(exe), "calibrate", str(member_runs[0]), "--val", str(test_csv)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "test split" in proc.stderr + proc.stdout and "Traceback" not in proc.stderr


def test_validation_must_be_held_out(member_runs: list[Path], cnmc: Path, cache_dir: Path) -> None:
    """The fold-0 run trained on fold_1 + fold_2: tuning on fold_1 is refused, on fold_0 it is fine."""
    from leukoscope.errors import DataError
    from leukoscope.experiments.calibrate import calibrate_run

    run = member_runs[0]
    with pytest.raises(DataError, match="in the training split"):
        calibrate_run(run, cnmc, val_split="fold_1", cache_dir=str(cache_dir))
    with pytest.raises(DataError, match="no split"):
        calibrate_run(run, cnmc, val_split="fold_9", cache_dir=str(cache_dir))
    assert calibrate_run(run, cnmc, val_split="fold_0", cache_dir=str(cache_dir))["n"] == 12
