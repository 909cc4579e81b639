"""Subject-level bootstrap intervals from confusion counts, and paired differences between two models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from leukoscope.evaluate.intervals import SubjectResampler, metrics_from_confusion, paired_difference
from leukoscope.evaluate.predictions import paired_differences, score_with_intervals


def _data(seed: int = 0, subjects: int = 12, per: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(subjects) % 2, per)  # each subject holds one class, as on C-NMC
    names = np.repeat([f"s{i}" for i in range(subjects)], per)
    pred = np.where(rng.random(len(y)) < 0.8, y, 1 - y)
    return y, pred, names


def test_metrics_match_scikit_learn() -> None:
    y, pred, _ = _data()
    cm = np.zeros((2, 2))
    np.add.at(cm, (y, pred), 1)
    got = metrics_from_confusion(cm, positive_index=1)
    assert got["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert got["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert got["positive_precision"] == pytest.approx(precision_score(y, pred))
    assert got["positive_recall"] == pytest.approx(recall_score(y, pred))
    assert got["positive_f1"] == pytest.approx(f1_score(y, pred))


def test_resamples_whole_subjects_within_each_class() -> None:
    y, pred, names = _data()
    sampler = SubjectResampler(y, names, n_boot=200, seed=3)
    majority = np.array([int(name[1:]) % 2 for name in sampler.subject_names])
    for cls in (0, 1):  # every resample keeps the class's number of subjects
        assert (sampler.weights[:, majority == cls].sum(axis=1) == (majority == cls).sum()).all()
    point, draws = sampler.metric_draws(pred, 2, 1)
    # a resample's metric equals scikit-learn's on the images of the drawn subjects
    b = 7
    idx = np.concatenate(
        [np.flatnonzero(sampler.subject_of == s).repeat(1) for s in range(sampler.n_subjects)
         for _ in range(int(sampler.weights[b, s]))]
    )  # fmt: skip
    assert draws["weighted_f1"][b] == pytest.approx(f1_score(y[idx], pred[idx], average="weighted"))
    assert (
        np.quantile(draws["weighted_f1"], 0.025)
        < point["weighted_f1"]
        < np.quantile(draws["weighted_f1"], 0.975)
    )
    again = SubjectResampler(y, names, n_boot=200, seed=3)
    assert (again.weights == sampler.weights).all()  # seeded


def test_paired_difference_of_a_model_with_itself_is_zero_and_a_better_model_wins() -> None:
    y, pred, names = _data()
    sampler = SubjectResampler(y, names, n_boot=300, seed=0)
    same = paired_difference(sampler, pred, pred, 2, 1)
    assert same["point"] == 0 and same["low"] == 0 and same["high"] == 0
    better = paired_difference(sampler, y, pred, 2, 1)  # perfect vs 80%
    assert better["point"] > 0.1 and better["low"] > 0 and better["share_better"] == 1.0


def _table(y: np.ndarray, p_all: np.ndarray, names: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "split": "val",
            "path": [f"{i}.bmp" for i in range(len(y))],
            "label": np.where(y == 1, "all", "hem"),
            "subject": names,
            "subject_known": True,
            "ok": True,
            "p_all": p_all,
            "p_hem": 1 - p_all,
        }
    )


def test_scores_of_a_prediction_table_carry_intervals() -> None:
    y, pred, names = _data()
    table = _table(y, pred.astype(float) * 0.9 + 0.05, names)
    scores = score_with_intervals(table, "val", ["all", "hem"], 0.5, "all", n_boot=200, seed=1)
    ci = scores["ci"]
    assert ci["weighted_f1"]["point"] == pytest.approx(scores["weighted_f1"])
    assert ci["positive_f1"]["point"] == pytest.approx(scores["positive"]["f1"])
    assert ci["weighted_f1"]["low"] <= scores["weighted_f1"] <= ci["weighted_f1"]["high"]
    assert scores["bootstrap"]["unit"] == "subject" and scores["bootstrap"]["n_units"] == 12
    tables = {"m/bce": table, "m/focal": _table(y, y * 0.9 + 0.05, names)}
    diff = paired_differences(tables, "m/bce", "val", ["all", "hem"], 0.5, "all", n_boot=200)
    assert set(diff) == {"m/focal"} and diff["m/focal"]["point"] > 0
