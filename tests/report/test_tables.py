"""Tables 1-3 beside the paper's numbers, and the cross-validation summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from leukoscope.report import cv, paper, tables


def _score(f1: float, n: int = 10, **extra: float) -> dict:
    return {"n": n, "weighted_f1": f1, "accuracy": extra.get("accuracy", f1), "roc_auc": 0.5, **extra}


def test_the_papers_numbers() -> None:
    assert paper.published("focal_hinge", "densenet201").f1 == 90.7
    assert paper.published("weighted_bce", "efficientnetb2").f1 == 85.29
    assert paper.ENSEMBLE.f1 == 91.94 and paper.TABLE3.recall == 95.89
    assert paper.TABLE1[("augmented", "total")] == 20050 == 10778 + 9272
    assert paper.TABLE1[("train", "all")] + paper.TABLE1[("train", "hem")] == paper.TABLE1[("train", "total")]


def _ci(point: float, low: float, high: float) -> dict:
    return {"point": point, "low": low, "high": high, "level": 0.95}


def test_table2_gives_intervals_paired_differences_and_the_papers_column() -> None:
    scores = {
        f"densenet201/{loss}": {
            "val": _score(0.6 + i / 100, ci={"weighted_f1": _ci(0.6 + i / 100, 0.5, 0.7)},
                          positive={"precision": 0.8, "recall": 0.9, "f1": 0.85})
        }
        for i, loss in enumerate(paper.LOSSES)
    }  # fmt: skip
    scores["ensemble"] = {"val": _score(0.8)}
    differences = {"densenet201/focal_hinge": _ci(0.04, -0.01, 0.09)}
    frame = tables.table2(
        scores, ["densenet201"], list(paper.LOSSES), {"densenet201": "focal"}, "val", differences
    )
    assert frame["ours weighted F1"].tolist() == pytest.approx([60, 61, 62, 63, 64, 80])
    assert frame["weighted F1 95% CI low"].tolist()[:5] == pytest.approx([50] * 5)
    assert frame["paper weighted F1"].tolist() == [85.59, 86.86, 88.53, 89.65, 90.7, 91.94]
    assert frame["ours ALL F1"].tolist()[0] == pytest.approx(85.0)
    assert frame["vs BCE (paired)"].tolist()[4] == pytest.approx(4.0)
    assert frame["in ensemble"].tolist() == ["", "", "*", "", "", ""]
    text = tables.markdown(frame, "Table 2", [])
    assert "60.00 [50.00, 70.00]" in text and "4.00 [-1.00, 9.00]" in text and "CI low" not in text
    notes = tables.table2_notes("paper", "val", 10, {"densenet201": "focal"}, "weighted_f1", None)
    assert "preliminary test (also the validation set)" in notes[0] and "final test" in notes[0]


def test_several_seeds_give_mean_and_std() -> None:
    seeds = {"1": {"weighted_f1": 0.6}, "2": {"weighted_f1": 0.8}}
    scores = {"m/bce": {"test": _score(0.7, per_seed=seeds)}, "ensemble": {"test": _score(0.75)}}
    frame = tables.table2(scores, ["m"], ["bce"], {"m": "bce"}, "test")
    assert frame["seeds mean"].tolist()[0] == pytest.approx(70.0)
    assert frame["seeds std"].tolist()[0] == pytest.approx(14.14, abs=0.01)


def test_interpretations_are_marked() -> None:
    notes = tables.interpretation_notes({"hinge": {"on": "sigmoid"}, "weighted_bce": {}}, "paper")
    assert "sigmoid output p" in notes[0] and "original training set" in notes[1]
    assert "Not in the paper" in notes[2] and "optimistic" in notes[3]
    notes = tables.interpretation_notes({"weighted_bce": {"counts": "augmented"}}, "heldout")
    assert "on the logit" in notes[0] and "augmented training set" in notes[1] and len(notes) == 3


def test_table1_and_table3(tmp_path: Path) -> None:
    counts = {"images": 0, "per_class": {}, "subjects": 0}
    summary = {
        "class_names": ["all", "hem"],
        "protocol": "heldout",
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
    prelim = t1[t1["set"].str.startswith("preliminary")].iloc[0]
    assert (prelim["ours all"], prelim["paper all"], prelim["paper hem"]) == (4, 1219, 648)
    final = t1[t1["set"].str.startswith("final")].iloc[0]
    assert (final["ours total"], final["paper all"], final["paper hem"]) == (5, 1761, 825)
    assert t1.iloc[-1]["ours total"] == 18 and t1.iloc[-1]["paper total"] == 20050
    summary["protocol"] = "paper"  # the three folds train; the prelim validates
    t1 = tables.table1(summary, {"all": 9, "hem": 9})
    assert t1.iloc[0]["ours total"] == 9 and "validates" in t1.iloc[1]["set"]
    val = _score(
        0.7, accuracy=0.75, positive={"precision": 0.5, "recall": 1.0, "f1": 2 / 3},
        ci={"positive_recall": _ci(1.0, 0.9, 1.0)},
    )  # fmt: skip
    t3 = tables.table3(val, "ours")
    assert t3["ours"].tolist()[:4] == pytest.approx([75.0, 50.0, 100.0, 66.67])
    assert t3["95% CI low"].tolist()[2] == pytest.approx(90.0)
    tables.write_table(t3, tmp_path / "t3.csv", tmp_path / "t3.md", "Table 3", ["a note"])
    text = (tmp_path / "t3.md").read_text()
    assert text.startswith("## Table 3") and "n/a" in text and "- a note" in text
    assert "100.00 [90.00, 100.00]" in text


def test_cv_summary_mean_and_std() -> None:
    scores = {k: {"m/bce": _score(f1), "ensemble": _score(f1 + 0.1)} for k, f1 in enumerate((0.6, 0.8))}
    scores[1]["m/bce"]["roc_auc"] = None
    summary = cv.summarise(scores, {0: {"m": "bce"}, 1: {"m": "bce"}})
    assert summary["selection"] == "inner" and summary["split"] == "test"
    block = summary["models"]["m/bce"]["weighted_f1"]
    assert block["mean"] == pytest.approx(0.7) and block["std"] == pytest.approx(0.1414, abs=1e-4)
    assert summary["models"]["m/bce"]["roc_auc"] == {"mean": 0.5, "std": 0.0, "folds": [0.5, None]}
    assert summary["ensemble"]["weighted_f1"]["mean"] == pytest.approx(0.8)
    assert summary["folds"] == 2 and summary["chosen"]["fold_1"] == {"m": "bce"}
    assert len(cv.per_fold_frame(summary)) == 4
