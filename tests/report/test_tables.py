"""Tables 1-3 beside the paper's numbers, and the cross-validation summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from leukoscope.experiments import paper
from leukoscope.report import cv, tables


def _score(f1: float, n: int = 10, **extra: float) -> dict:
    return {"n": n, "weighted_f1": f1, "accuracy": extra.get("accuracy", f1), "roc_auc": 0.5, **extra}


def test_the_papers_numbers() -> None:
    assert paper.published("focal_hinge", "densenet201").f1 == 90.7
    assert paper.published("weighted_bce", "efficientnetb2").f1 == 85.29
    assert paper.ENSEMBLE.f1 == 91.94 and paper.TABLE3.recall == 95.89
    assert paper.TABLE1[("augmented", "total")] == 20050 == 10778 + 9272
    assert paper.TABLE1[("train", "all")] + paper.TABLE1[("train", "hem")] == paper.TABLE1[("train", "total")]


def test_table2_is_on_the_test_split_beside_the_final_test() -> None:
    scores = {
        f"densenet201/{loss}": {"val": _score(0.5), "test": _score(0.6 + i / 100)}
        for i, loss in enumerate(paper.LOSSES)
    }
    scores["ensemble"] = {"val": _score(0.7), "test": _score(0.8)}
    frame, split = tables.table2(scores, ["densenet201"], list(paper.LOSSES), {"densenet201": "focal"})
    assert split == "test"
    assert frame["ours weighted F1"].tolist() == pytest.approx([60, 61, 62, 63, 64, 80])
    assert frame["paper weighted F1"].tolist() == [85.59, 86.86, 88.53, 89.65, 90.7, 91.94]
    assert frame["in ensemble"].tolist() == ["", "", "*", "", "", ""]
    for record in scores.values():
        record["test"]["n"] = 0  # no labelled test split: validation, and the table says so
    frame, split = tables.table2(scores, ["densenet201"], list(paper.LOSSES), {"densenet201": "focal"})
    assert split == "val"
    notes = tables.table2_notes(split, 10, {"densenet201": "focal"}, "weighted_f1")
    assert "validation split" in notes[0] and "final test" in notes[0]


def test_table1_and_table3(tmp_path: Path) -> None:
    counts = {"images": 0, "per_class": {}, "subjects": 0}
    summary = {
        "class_names": ["all", "hem"],
        "protocol": "official",
        "parts": {
            "train": {**counts, "per_class": {"all": 6, "hem": 3}},
            "val": {**counts, "per_class": {"all": 2, "hem": 1}},
            "test": {**counts, "per_class": {"all": 4, "hem": 2}},
            "final": {**counts, "images": 5},
        },
    }
    t1 = tables.table1(summary, {"all": 9, "hem": 9})
    first = t1.iloc[0]
    assert (first["ours all"], first["ours hem"], first["ours total"], first["paper total"]) == (
        8,
        4,
        12,
        10661,
    )
    assert t1.iloc[-1]["ours total"] == 18 and t1.iloc[-1]["paper total"] == 20050
    val = _score(0.7, accuracy=0.75, positive={"precision": 0.5, "recall": 1.0, "f1": 2 / 3})
    t3 = tables.table3(val)
    assert t3["ours (validation)"].tolist()[:4] == pytest.approx([75.0, 50.0, 100.0, 66.67])
    tables.write_table(t3, tmp_path / "t3.csv", tmp_path / "t3.md", "Table 3", ["a note"])
    text = (tmp_path / "t3.md").read_text()
    assert text.startswith("## Table 3") and "n/a" in text and "- a note" in text


def test_cv_summary_mean_and_std() -> None:
    scores = {k: {"m/bce": _score(f1), "ensemble": _score(f1 + 0.1)} for k, f1 in enumerate((0.6, 0.8))}
    scores[1]["m/bce"]["roc_auc"] = None
    summary = cv.summarise(scores, {0: {"m": "bce"}, 1: {"m": "bce"}})
    block = summary["models"]["m/bce"]["weighted_f1"]
    assert block["mean"] == pytest.approx(0.7) and block["std"] == pytest.approx(0.1414, abs=1e-4)
    assert summary["models"]["m/bce"]["roc_auc"] == {"mean": 0.5, "std": 0.0, "folds": [0.5, None]}
    assert summary["ensemble"]["weighted_f1"]["mean"] == pytest.approx(0.8)
    assert summary["folds"] == 2 and summary["chosen"]["fold_1"] == {"m": "bce"}
    assert len(cv.per_fold_frame(summary)) == 4
