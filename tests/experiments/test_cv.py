"""Cross-validation: grouped folds without leaks, per-fold + mean ± std, OOF predictions, resume, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from leukoscope.cli.main import app
from leukoscope.errors import ConfigError, DataError
from leukoscope.experiments._runs import claim_out
from leukoscope.experiments.cv import check_folds, make_folds

from .conftest import TINY, read_csv


def _table(n_subjects: int, per: int) -> pd.DataFrame:
    rows = [
        {"path": f"/x/s{s}_{i}.png", "label": "all" if s % 2 else "hem", "subject": f"s{s}", "split": "",
         "source": "csv", "subject_known": True}
        for s in range(n_subjects) for i in range(per)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_grouped_folds_keep_subjects_together() -> None:
    table = _table(10, 3)
    folds = make_folds(table, 5, seed=0)
    assert set(folds) == set(range(5))
    assert (folds.groupby(table["subject"]).nunique() == 1).all()
    leaky = folds.copy()
    leaky.iloc[0] = (leaky.iloc[0] + 1) % 5  # one image of s0 moved to another fold
    with pytest.raises(DataError, match="two folds"):
        check_folds(table, leaky)


def test_out_folder_of_another_experiment_is_refused(tmp_path: Path) -> None:
    claim_out(tmp_path, "aaa", "cv.json")
    claim_out(tmp_path, "aaa", "cv.json")  # same experiment: resumes
    with pytest.raises(ConfigError, match="different experiment"):
        claim_out(tmp_path, "bbb", "cv.json")


def test_cv_on_cnmc_uses_official_folds_without_leaks(cv_cnmc: tuple[dict, Path], cnmc: Path) -> None:
    summary, out = cv_cnmc
    assert summary["k"] == 3 and summary["official_folds"] and summary["subject_known"]
    assert summary["n_images"] == 36  # 9 subjects x 4 cells; the prelim test images never enter
    folds = read_csv(out / "folds.csv")
    assert (folds.groupby("subject")["fold"].nunique() == 1).all()
    assert (folds["split"] == folds["fold"].map(lambda f: f"fold_{f}")).all()  # the official assignment
    val_paths = []
    for f in range(3):
        splits = read_csv(out / f"fold_{f}" / "splits.csv")
        train, val = splits[splits["split"] == "train"], splits[splits["split"] == "val"]
        assert not set(train["subject"]) & set(val["subject"])
        assert set(val["path"]) == set(folds.loc[folds["fold"] == f, "path"])
        val_paths += list(val["path"])
    assert len(val_paths) == len(set(val_paths)) == 36  # every image validated exactly once


def test_cv_summary_and_outputs(cv_cnmc: tuple[dict, Path]) -> None:
    summary, out = cv_cnmc
    f1s = [r["weighted_f1"] for r in summary["folds"]]
    assert summary["mean"]["weighted_f1"] == pytest.approx(np.mean(f1s))
    assert summary["std"]["weighted_f1"] == pytest.approx(np.std(f1s, ddof=1))
    assert {"accuracy", "balanced_accuracy", "roc_auc", "f1_all", "f1_hem"} <= set(summary["mean"])
    oof = read_csv(out / "oof_predictions.csv")
    assert list(oof.columns) == ["path", "subject", "fold", "label", "p_all", "p_hem", "pred"]
    assert len(oof) == 36 and np.allclose(oof["p_all"] + oof["p_hem"], 1, atol=1e-5)
    for f in range(3):  # each fold's OOF rows reproduce that fold's metrics
        part = oof[oof["fold"] == f]
        assert (part["pred"] == part["label"]).mean() == pytest.approx(summary["folds"][f]["accuracy"])
    assert json.loads((out / "summary.json").read_text())["mean"] == summary["mean"]
    ci = summary["pooled"]["bootstrap"]["weighted_f1"]
    assert ci["low"] <= ci["point"] <= ci["high"] and ci["n_subjects"] == 9
    html = (out / "report.html").read_text()
    assert "Per fold" in html and "Per subject" in html and "official folds" in html


def test_cv_resumes_finished_folds(cv_cnmc: tuple[dict, Path], tiny_cfg: Any, cnmc: Path) -> None:
    from leukoscope.experiments.cv import run_cv

    summary, out = cv_cnmc
    stamps = [(out / f"fold_{f}" / "model.safetensors").stat().st_mtime_ns for f in range(3)]
    again = run_cv(tiny_cfg(cnmc), 3, out, tta="flips", bootstrap=50)
    assert [(out / f"fold_{f}" / "model.safetensors").stat().st_mtime_ns for f in range(3)] == stamps
    assert again["folds"] == summary["folds"]
    with pytest.raises(ConfigError, match="different experiment"):
        run_cv(tiny_cfg(cnmc, **{"optim.lr": 0.5}), 3, out)


@pytest.mark.slow
def test_cv_cli_on_folder_without_subjects(folder_set: Path, cache_dir: Path, tmp_path: Path) -> None:
    args = ["cv", "--data", str(folder_set), "--folds", "2", "--out", str(tmp_path / "cv"), "--json"]
    args += ["--image-size", "48", "--epochs", "1", "--batch-size", "8", "--max-steps-per-epoch", "2"]
    args += ["--lr", str(TINY["optim.lr"]), "--cache-dir", str(cache_dir)]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["subject_known"] is False and summary["n_images"] == 36
    assert summary["official_folds"] is False and len(summary["folds"]) == 2
    assert 0 <= summary["mean"]["weighted_f1"] <= 1 and "weighted_f1" in summary["std"]
    assert "Subjects are unknown" in (tmp_path / "cv" / "report.html").read_text()
    folds = read_csv(tmp_path / "cv" / "folds.csv")
    assert folds["path"].is_unique and set(folds["fold"]) == {0, 1}


@pytest.mark.slow
def test_cv_report_opens_offline_in_chromium(cv_cnmc: tuple[dict, Path]) -> None:
    from .conftest import open_in_chromium

    _, out = cv_cnmc
    problems, loaded, requests = open_in_chromium(out / "report.html")
    assert problems == []
    assert len(loaded) >= 6 and all(loaded)  # 3 figures + 3 fold curves (+ error thumbnails)
    assert all(u.startswith(("file:", "data:")) for u in requests)
