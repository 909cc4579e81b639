"""Prediction tables and their scores: unreadable and unlabelled rows are counted, never scored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leukoscope.errors import DataError
from leukoscope.evaluate.predictions import mean_probabilities, prediction_table, score_split


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
