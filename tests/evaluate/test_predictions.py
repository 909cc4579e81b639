"""Prediction tables and their scores: unreadable and unlabelled rows are counted, never scored; the
workflow's predict, average_seeds and evaluate stages write them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leukoscope._io import read_json
from leukoscope.errors import DataError
from leukoscope.evaluate.predictions import (
    mean_probabilities,
    predict_stage,
    prediction_table,
    score_model,
    score_split,
)


def _rows(labels: list[str], ok: list[bool] | None = None) -> pd.DataFrame:
    n = len(labels)
    return pd.DataFrame(
        {
            "path": [f"/d/{i}.bmp" for i in range(n)],
            "label": labels,
            "subject": [f"s{i % 2}" for i in range(n)],
            "subject_known": True,
            "ok": ok if ok is not None else [True] * n,
        }
    )


def test_scores_follow_the_threshold_and_skip_unreadable_rows() -> None:
    rows = _rows(["all", "all", "hem", "hem", "hem"], ok=[True, True, True, True, False])
    p_all = np.array([0.9, 0.4, 0.2, 0.6, 0.99])
    table = prediction_table(rows, np.stack([p_all, 1 - p_all], axis=1), ["all", "hem"], "test")
    assert np.isnan(table["p_all"].iloc[4])
    scores = score_split(table, "test", ["all", "hem"], 0.5, "all")
    assert scores["n"] == 4 and scores["unreadable"] == 1
    assert scores["accuracy"] == pytest.approx(0.5)
    assert scores["positive"] == {"class": "all", "precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert scores["confusion_matrix"] == [[1, 1], [1, 1]]
    lower = score_split(table, "test", ["all", "hem"], 0.3, "all")
    assert lower["positive"]["recall"] == 1.0


def test_an_unlabelled_split_is_not_scored() -> None:
    table = prediction_table(_rows(["", ""]), np.full((2, 2), 0.5), ["all", "hem"], "final")
    scores = score_split(table, "final", ["all", "hem"])
    assert scores["n"] == 0 and scores["unlabelled"] == 2 and "not scored" in scores["note"]


def test_ensemble_is_the_members_mean() -> None:
    rows = _rows(["all", "hem"])
    a = prediction_table(rows, np.array([[0.8, 0.2], [0.4, 0.6]]), ["all", "hem"], "val")
    b = prediction_table(rows, np.array([[0.6, 0.4], [0.0, 1.0]]), ["all", "hem"], "val")
    mean = mean_probabilities([a, b], ["all", "hem"])
    assert mean["p_all"].tolist() == pytest.approx([0.7, 0.2])
    with pytest.raises(DataError, match="different images"):
        mean_probabilities([a, b.iloc[::-1].reset_index(drop=True)], ["all", "hem"])


def test_average_seeds_and_evaluate_stages_write_the_rules_files(tmp_path: Path) -> None:
    import stage_files as S

    files = S.write_chain(tmp_path)
    seeds = {s: pd.read_parquet(tmp_path / "models" / "simplecnn/focal" / f"seed_{s}" / "predictions.parquet")
             for s in S.SEEDS}  # fmt: skip
    mean = pd.read_parquet(files["simplecnn/focal/predictions"])
    np.testing.assert_allclose(mean["p_all"], (seeds[0]["p_all"] + seeds[1]["p_all"]) / 2)
    record = read_json(files["simplecnn/focal/test"])
    expected = score_model(mean, seeds, "test", 0.5, "all", n_boot=50, seed=0)
    assert record == json.loads(json.dumps(expected | {"model": "simplecnn/focal"}))
    assert record["n"] == 12 and set(record["per_seed"]) == {"0", "1"} and "weighted_f1" in record["ci"]
    assert record["weighted_f1"] == score_split(mean, "test", S.CLASSES, 0.5, "all")["weighted_f1"]


def test_predict_stage_predicts_each_crop_file_and_each_cv_role(tmp_path: Path) -> None:
    from infer.helpers import cell_image, make_model_dir
    from leukoscope.infer.predictor import load_predictor
    from leukoscope.preprocess.pipeline import preprocess_image

    model = make_model_dir(tmp_path / "model", size=32)
    predictor = load_predictor(model)
    crops = np.stack([preprocess_image(cell_image(i), predictor.card.preprocess) for i in range(6)])
    index = _rows(["all", "hem"] * 3).assign(row=np.arange(6)[::-1], fold=[0, 0, 1, 1, 2, 2],
                                             inner=[0, 0, 1, 0, 1, 0])  # fmt: skip
    np.save(tmp_path / "crops.npy", crops[::-1])  # stored in another order than the index: joined by row
    index.to_parquet(tmp_path / "index.parquet")
    part = (tmp_path / "index.parquet", tmp_path / "crops.npy")
    expected = predictor.predict_arrays(crops)[:, 0]

    table = predict_stage(model / "model.keras", {"test": part}, tmp_path / "test.parquet", batch_size=4)
    assert table.equals(pd.read_parquet(tmp_path / "test.parquet"))
    assert set(table["split"]) == {"test"}
    np.testing.assert_allclose(table["p_all"], expected, atol=1e-6)
    cv = predict_stage(model, {"pool": part}, tmp_path / "fold_0.parquet", fold=0)
    assert cv["split"].tolist() == ["val", "val", "test", "test"]  # inner rows of other folds, then fold 0
    np.testing.assert_allclose(cv["p_all"], expected[[2, 4, 0, 1]], atol=1e-6)
