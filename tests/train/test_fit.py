"""End to end through the CLI: train one epoch, every run-directory artefact, evaluate, config + flags,
and bad input as one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from leukoscope.models.card import load_model

from .conftest import run_cli, tiny_flags, write_cnmc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(cells_dir: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny run; the config file sets values the flags then partly override (flags win)."""
    tmp = tmp_path_factory.mktemp("fit")
    config = tmp / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"head_hidden": 32},
                "train": {"epochs": 5, "balance": "oversample"},
                "optim": {"lr": 0.5, "betas": [0.8, 0.99]},
            }
        )
    )
    out = tmp / "run"
    result = run_cli("train", "--config", str(config), *tiny_flags(cells_dir, out, cache_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_run_directory_has_every_artefact(run_dir: Path) -> None:
    for name in ("config.yaml", "model_card.json", "model.keras", "curves.png", "metrics.json", "splits.csv"):
        assert (run_dir / name).is_file(), name
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history["epoch"]) == [0]
    assert {"loss", "accuracy", "weighted_f1", "val_loss", "val_weighted_f1", "val_roc_auc"} <= set(history)
    assert list((run_dir / "logs" / "tensorboard").rglob("events.out.tfevents.*"))
    assert (run_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not (run_dir.parent / f"{run_dir.name}.state").exists()  # the resume state is cleaned up


def test_config_file_and_flags_combine(run_dir: Path) -> None:
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["head_hidden"] == 32  # from the file
    assert saved["optim"]["betas"] == [0.8, 0.99]  # from the file
    assert saved["train"]["balance"] == "oversample"  # from the file
    assert saved["train"]["epochs"] == 1  # flag beats the file's 5
    assert saved["optim"]["lr"] == 1e-3  # flag beats the file's 0.5
    assert saved["preprocess"]["mean"] is not None  # resolved stats are saved with the run


def test_workflow_config_trains_its_first_job(cells_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    """`--config config.yaml` (the workflow's) trains one grid job: crop auto resolved from the images,
    oversampled by augment.target auto (balance on a set this small); --accelerator still works, read as
    --devices."""
    out = tmp_path / "paper"
    flags = [*tiny_flags(cells_dir, out, cache_dir), "--max-steps-per-epoch", "2", "--accelerator", "cpu"]
    result = run_cli("train", "--config", "config.yaml", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--accelerator is now --devices (read as --devices cpu)" in result.stderr
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["preprocess"]["crop"] == "cell"  # auto, on cells on black
    assert saved["train"]["oversample_to"] == "auto"  # a small set: balanced, not the paper's 20,050
    assert "oversampling to" in result.stderr and "20050" not in result.stderr.replace(",", "")
    assert (saved["train"]["devices"], saved["model"]["backbone"]) == ("cpu", "simplecnn")


def test_model_card_and_splits(run_dir: Path) -> None:
    model, card = load_model(run_dir)
    assert card.backbone == "simplecnn" and card.head_hidden == 32 and card.feature_layer == "top_activation"
    assert card.class_names == ["all", "hem"] and card.positive_class == "all"
    assert card.input_mode == "tf" and "training-set standardisation" in card.input_normalization
    assert card.loss == {"name": "bce", "params": {}}
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert list(card.preprocess.mean) == pytest.approx(saved["preprocess"]["mean"])
    summary = card.data_summary
    assert summary["train"]["per_class"] == {"all": 16, "hem": 16}  # folds 0-1: 4 + 4 subjects x 4 cells
    assert summary["val"]["subjects"] == 4 and summary["val"]["subjects_known"] is True
    splits = pd.read_csv(run_dir / "splits.csv")
    val = splits[splits["split"] == "val"]
    assert set(val["dataset_split"]) == {"fold_2"}
    assert not set(val["subject"]) & set(splits.loc[splits["split"] == "train", "subject"])
    assert (
        model.dtype_policy.name == "float32" and getattr(model, "optimizer", None) is None
    )  # no optimizer state


def test_metrics_json_matches_evaluate_on_val(run_dir: Path, cache_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["split"] == "val" and metrics["n"] == 16 and metrics["epoch"] == 1
    assert 0.0 <= metrics["weighted_f1"] <= 1.0
    timing = metrics["timing"]  # where the job's time went: the first (tracing) step, then steady steps
    assert timing["first_step_s"] > 0 and timing["epochs_timed"] == 1 and timing["policy"] == "float32"
    assert timing["steady_steps"] >= 1 and timing["steady_images_per_s"] > 0 and timing["fit_s"] > 0
    result = run_cli("evaluate", str(run_dir), "--split", "val", "--json", "--cache-dir", str(cache_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    evaluated = json.loads(result.stdout)
    assert evaluated["n"] == 16
    assert evaluated["weighted_f1"] == pytest.approx(metrics["weighted_f1"])
    assert evaluated["training_overlap"]["files"] == 0


def test_evaluate_dataset_split_writes_report(
    run_dir: Path, cells_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    args = [
        "evaluate",
        str(run_dir),
        "--data",
        str(cells_dir),
        "--split",
        "fold_0",
        "--json",
        "--tta",
        "flips",
    ]
    args += ["--bootstrap", "20"]
    result = run_cli(*args, "--out", str(out), "--cache-dir", str(cache_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(result.stdout)
    assert {"weighted_f1", "accuracy", "n", "roc_auc", "confusion_matrix"} <= set(metrics)
    assert metrics["n"] == 16 and metrics["training_overlap"]["files"] == 16  # fold_0 was training data
    assert metrics["tta"] == "flips" and metrics["bootstrap"]["roc_auc"]["n_boot"] == 20
    assert "ece" in metrics["calibration"]
    for name in (
        "metrics.json",
        "confusion_matrix.png",
        "roc.png",
        "reliability.png",
        "report.html",
        "predictions.csv",
    ):
        assert (out / name).is_file(), name
    assert len(pd.read_csv(out / "predictions.csv")) == 16


def _one_line_error(result: object) -> str:
    assert result.returncode == 2, result.stderr[-2000:]  # type: ignore[attr-defined]
    assert "Traceback" not in result.stderr  # type: ignore[attr-defined]
    lines = [line for line in result.stderr.splitlines() if line.strip()]  # type: ignore[attr-defined]
    assert len(lines) == 1, result.stderr  # type: ignore[attr-defined]
    return lines[0]


def test_missing_data_folder_is_one_line(tmp_path: Path, cache_dir: Path) -> None:
    line = _one_line_error(run_cli("train", *tiny_flags(tmp_path / "nowhere", tmp_path / "run", cache_dir)))
    assert "dataset not found" in line and "nowhere" in line


def test_one_class_only_is_one_line(tmp_path: Path, cache_dir: Path) -> None:
    data = write_cnmc(tmp_path / "onlyall", {"1": 0, "2": 1, "3": 2})
    line = _one_line_error(run_cli("train", *tiny_flags(data, tmp_path / "run", cache_dir)))
    assert "one class" in line


def test_existing_run_and_bad_resume_are_one_line(
    run_dir: Path, cells_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    line = _one_line_error(run_cli("train", *tiny_flags(cells_dir, run_dir, cache_dir)))
    assert "already holds a run" in line
    line = _one_line_error(run_cli("train", "--resume", str(tmp_path)))
    assert "resume" in line


def test_finished_run_has_nothing_to_resume(run_dir: Path) -> None:
    line = _one_line_error(run_cli("train", "--resume", str(run_dir)))
    assert "has finished" in line


def test_resume_keeps_the_recipe(run_dir: Path) -> None:
    line = _one_line_error(run_cli("train", "--resume", str(run_dir), "--lr", "0.1"))
    assert "cannot change" in line


def test_deterministic_runs_repeat_exactly(cells_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    weights = []
    for name in ("a", "b"):
        flags = tiny_flags(cells_dir, tmp_path / name, cache_dir)
        result = run_cli("train", *flags, "--deterministic", "--seed", "3", "--epochs", "2")
        assert result.returncode == 0, result.stderr[-2000:]
        assert yaml.safe_load((tmp_path / name / "config.yaml").read_text())["train"]["deterministic"]
        weights.append(load_model(tmp_path / name)[0].get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)
