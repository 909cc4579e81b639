"""compute_metrics against scikit-learn on hand-made vectors, and the PNG figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from leukoscope.errors import DataError
from leukoscope.evaluate.metrics import compute_metrics
from leukoscope.evaluate.plots import plot_confusion_matrix, plot_roc

CLASSES = ["all", "hem"]  # positive class "all" (index 0), as for C-NMC


def _binary() -> tuple[list[str], np.ndarray, list[str]]:
    labels = ["all", "all", "all", "hem", "hem", "all", "hem", "hem", "all", "hem"]
    p_all = np.array([0.9, 0.8, 0.4, 0.3, 0.6, 0.55, 0.1, 0.2, 0.45, 0.7])
    subjects = ["s1", "s1", "s1", "h1", "h1", "s2", "h2", "h2", "s2", "h2"]
    return labels, np.stack([p_all, 1 - p_all], axis=1), subjects


def test_binary_matches_sklearn() -> None:
    labels, probs, subjects = _binary()
    m = compute_metrics(labels, probs, CLASSES, threshold=0.5, subjects=subjects, positive_class="all")
    y = np.array([0 if v == "all" else 1 for v in labels])
    pred = np.where(probs[:, 0] >= 0.5, 0, 1)
    assert m["n"] == 10
    assert m["weighted_f1"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y == 0, probs[:, 0]))
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    p, r, f, s = skm.precision_recall_fscore_support(y, pred)
    assert m["per_class"]["hem"] == pytest.approx(
        {"precision": p[1], "recall": r[1], "f1": f[1], "support": s[1]}
    )


def test_threshold_moves_the_decision() -> None:
    labels, probs, _ = _binary()
    low = compute_metrics(labels, probs, CLASSES, threshold=0.05, positive_class="all")
    assert low["per_class"]["all"]["recall"] == 1.0 and low["per_class"]["hem"]["recall"] == 0.0
    assert low["roc_auc"] == compute_metrics(labels, probs, CLASSES, positive_class="all")["roc_auc"]


def test_per_subject_and_majority_vote() -> None:
    labels, probs, subjects = _binary()
    m = compute_metrics(labels, probs, CLASSES, subjects=subjects, positive_class="all")
    # predictions: s1 all,all,hem (2/3); h1 hem,all (1/2); s2 all,hem (1/2); h2 hem,hem,all (2/3)
    assert m["per_subject"]["s1"] == {
        "n": 3,
        "accuracy": pytest.approx(2 / 3),
        "label": "all",
        "majority_vote": "all",
    }
    assert m["per_subject"]["h1"]["accuracy"] == 0.5
    assert m["subject_mean_accuracy"] == pytest.approx(np.mean([2 / 3, 0.5, 0.5, 2 / 3]))
    # majority votes: s1 all (right), h1 tie -> lower index "all" (wrong), s2 tie -> "all" (right),
    # h2 hem (right)
    assert m["subject_majority_accuracy"] == pytest.approx(3 / 4)
    assert m["n_subjects"] == 4


def test_integer_labels_and_one_dimensional_probs() -> None:
    y = np.array([1, 0, 1, 1, 0])
    p = np.array([0.8, 0.3, 0.6, 0.2, 0.1])  # P(class 1), class 1 is the default positive
    m = compute_metrics(y, p, ["hem", "all"])
    assert m["weighted_f1"] == pytest.approx(skm.f1_score(y, (p >= 0.5).astype(int), average="weighted"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))


def test_multiclass_macro_ovr_auc() -> None:
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2] * 10)
    probs = rng.dirichlet([1, 1, 1], size=30)
    probs[np.arange(30), y] += 0.5
    probs /= probs.sum(axis=1, keepdims=True)
    m = compute_metrics(y, probs, ["a", "b", "c"])
    pred = probs.argmax(axis=1)
    assert m["weighted_f1"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    assert m["threshold"] is None


def test_undefined_auc_and_bad_labels() -> None:
    assert compute_metrics(["all", "all"], np.array([[0.9, 0.1], [0.2, 0.8]]), CLASSES)["roc_auc"] is None
    with pytest.raises(DataError, match="not classes of the model"):
        compute_metrics(["all", "blast"], np.array([[0.9, 0.1], [0.2, 0.8]]), CLASSES)


def test_pngs_are_written(tmp_path: Path) -> None:
    labels, probs, _ = _binary()
    m = compute_metrics(labels, probs, CLASSES, positive_class="all")
    y = np.array([0 if v == "all" else 1 for v in labels])
    paths = [
        plot_confusion_matrix(m["confusion_matrix"], CLASSES, tmp_path / "cm.png"),
        plot_roc(y, probs, CLASSES, tmp_path / "roc.png", positive_class="all"),
        plot_roc(
            np.array([0, 1, 2, 1]), np.eye(3)[[0, 1, 2, 0]] * 0.8 + 0.05, ["a", "b", "c"], tmp_path / "r3.png"
        ),
    ]
    for path in paths:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries
