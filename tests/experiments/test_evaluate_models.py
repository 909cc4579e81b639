"""`evaluate` takes whatever `predict` takes (run, ensemble spec, an export), with TTA, calibration,
bootstrap CIs and an HTML report in every evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leukoscope.evaluate.run import evaluate_model
from leukoscope.experiments._data import labelled_table
from leukoscope.experiments.ensemble import build_ensemble
from leukoscope.infer.ensemble import load_ensemble

from .conftest import open_in_chromium


def _probs(out: Path, names: list[str]) -> np.ndarray:
    table = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    return table[[f"p_{c}" for c in names]].to_numpy(float)


def test_ensemble_spec_with_tta_matches_the_ensemble(
    member_runs: list[Path], prelim_manifest: Path, cache_dir: Path, tmp_path: Path
) -> None:
    summary = build_ensemble(member_runs, prelim_manifest, tmp_path / "ens", cache_dir=str(cache_dir))
    spec = Path(summary["spec"])
    metrics = evaluate_model(spec, str(prelim_manifest), out=tmp_path / "eval", cache_dir=str(cache_dir),
                             tta="flips")  # fmt: skip
    ens = load_ensemble(spec)
    names = ens.card.class_names
    expected = ens.predict_table(labelled_table(prelim_manifest, names), "flips", str(cache_dir))
    assert np.allclose(_probs(tmp_path / "eval", names), expected, atol=1e-5)
    assert metrics["tta"] == "flips" and metrics["model_id"] == ens.model_id
    assert metrics["n"] == len(expected)


def test_every_evaluation_has_calibration_bootstrap_and_report(
    member_runs: list[Path], prelim_manifest: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    metrics = evaluate_model(member_runs[0], str(prelim_manifest), out=out, cache_dir=str(cache_dir),
                             bootstrap=30, seed=3)  # fmt: skip
    cal = metrics["calibration"]
    assert 0.0 <= cal["ece"] <= 1.0 and 0.0 <= cal["brier"] <= 2.0
    boot = metrics["bootstrap"]["weighted_f1"]
    assert boot["n_boot"] == 30 and boot["point"] == pytest.approx(metrics["weighted_f1"])
    assert boot["n_subjects"] == metrics["n_subjects"]  # resampled by subject, not by cell
    for name in ("metrics.json", "report.html", "reliability.png", "roc.png", "confusion_matrix.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["calibration"]["ece"] == pytest.approx(cal["ece"])
    html = (out / "report.html").read_text()
    assert "Most confident errors" in html and "reliability" in html and "bootstrap" in html
    problems, loaded, requests = open_in_chromium(out / "report.html")
    assert not problems and loaded and all(loaded)
    assert all(u.startswith(("file:", "data:")) for u in requests)


def test_tta_changes_the_probabilities_but_keeps_them_probabilities(
    member_runs: list[Path], prelim_manifest: Path, cache_dir: Path, tmp_path: Path
) -> None:
    kwargs = {"cache_dir": str(cache_dir)}
    evaluate_model(member_runs[0], str(prelim_manifest), out=tmp_path / "none", **kwargs)
    evaluate_model(member_runs[0], str(prelim_manifest), out=tmp_path / "d8", tta="d8", **kwargs)
    names = ["all", "hem"]
    plain, d8 = _probs(tmp_path / "none", names), _probs(tmp_path / "d8", names)
    assert np.allclose(d8.sum(axis=1), 1.0, atol=1e-5)
    assert not np.allclose(plain, d8, atol=1e-6)


def test_exports_evaluate_like_the_run(
    member_runs: list[Path], prelim_manifest: Path, cache_dir: Path, tmp_path: Path
) -> None:
    from leukoscope.infer.export import export_model_dir

    kwargs = {"cache_dir": str(cache_dir), "precision": "fp32"}
    keras_m = evaluate_model(
        member_runs[0], str(prelim_manifest), out=tmp_path / "k", backend="keras", **kwargs
    )
    onnx_m = evaluate_model(
        member_runs[0], str(prelim_manifest), out=tmp_path / "o", backend="onnx", **kwargs
    )
    tflite = export_model_dir(member_runs[0], "tflite", tmp_path / "deploy" / "model.tflite").path
    tflite_m = evaluate_model(tflite, str(prelim_manifest), out=tmp_path / "t", **kwargs)
    assert (keras_m["backend"], onnx_m["backend"], tflite_m["backend"]) == ("keras", "onnx", "tflite")
    for other, metrics in (("o", onnx_m), ("t", tflite_m)):
        assert np.allclose(_probs(tmp_path / "k", ["all", "hem"]), _probs(tmp_path / other, ["all", "hem"]),
                           atol=1e-4)  # fmt: skip
        assert metrics["weighted_f1"] == pytest.approx(keras_m["weighted_f1"])
    assert tflite_m["training_overlap"]["checked"] == 0  # a bare export has no splits.csv to check
