"""The per-subject table: counts per model, worst-first order, the split in the heading, unknown subjects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leukoscope.errors import DataError
from leukoscope.report.subjects import scored_split, subject_table
from leukoscope.report.tables import write_table

# subject -> (class, ensemble P(all) per image); "all" is the positive class, threshold 0.5
SUBJECTS = {
    "s1": ("all", [0.9, 0.8, 0.7, 0.2]),  # 1 error of 4: 75 %
    "s2": ("hem", [0.1, 0.6, 0.7]),  # 2 errors of 3: 33.33 %
    "s3": ("all", [0.9, 0.4]),  # 1 of 2: 50 %
    "s4": ("hem", [0.2, 0.5]),  # 1 of 2 (0.5 >= threshold: called all): 50 %
    "s5": ("hem", [0.9, 0.8, 0.1, 0.3]),  # 2 of 4: 50 %, more errors than s3 and s4
}


def _table(known: bool = True) -> pd.DataFrame:
    rows = []
    for subject, (label, probs) in SUBJECTS.items():
        for i, p in enumerate(probs):
            rows.append(("test", f"{subject}_{i}.bmp", label, subject, known, True, p))
    rows += [
        ("test", "broken.bmp", "all", "s1", known, False, np.nan),  # unreadable: left out
        ("test", "nolabel.bmp", "", "s9", known, True, 0.9),  # unlabelled: left out
        ("val", "v.bmp", "hem", "s1", known, True, 0.9),  # another split
    ]
    frame = pd.DataFrame(rows, columns=["split", "path", "label", "subject", "subject_known", "ok", "p_all"])
    frame["p_hem"] = 1.0 - frame["p_all"]
    return frame


def _member(table: pd.DataFrame, flip: set[str]) -> pd.DataFrame:
    """The ensemble's table with the calls of the paths in `flip` reversed, rows in reverse order."""
    out = table.copy()
    hit = out["path"].isin(flip)
    out.loc[hit, "p_all"] = 1.0 - out.loc[hit, "p_all"]
    out["p_hem"] = 1.0 - out["p_all"]
    return out.iloc[::-1].reset_index(drop=True)


def test_per_subject_counts_order_and_heading(tmp_path: Path) -> None:
    ensemble = _table()
    members = {"densenet201/focal": _member(ensemble, {"s1_3.bmp", "s2_0.bmp"}), "effnet/bce": ensemble}
    frame, title, notes = subject_table(ensemble, members, "test", 0.5, "all", "preliminary test")
    assert frame["subject"].tolist() == ["s2", "s5", "s3", "s4", "s1"]  # worst first, ties: more errors
    assert frame["class"].tolist() == ["hem", "hem", "all", "hem", "all"]
    assert frame["images"].tolist() == [3, 4, 2, 2, 4]
    assert frame["ensemble errors"].tolist() == [2, 2, 1, 1, 1]
    assert frame["ensemble correct"].tolist() == [1, 2, 1, 1, 3]
    assert frame["ensemble accuracy (%)"].tolist() == pytest.approx([33.33, 50, 50, 50, 75])
    # the first member fixes s1's error and makes a new one in s2
    assert frame["densenet201/focal errors"].tolist() == [3, 2, 1, 1, 0]
    assert frame["effnet/bce errors"].tolist() == frame["ensemble errors"].tolist()
    assert frame["ensemble vote"].tolist() == ["all", "all", "all", "all", "all"]  # s5: tie -> first class
    assert "preliminary test" in title and "per subject" in title
    assert "15 labelled readable images, 5 subjects; 1 unreadable and 1 unlabelled" in notes[0]
    assert "all when P(all) >= 0.5" in notes[1]
    write_table(frame, tmp_path / "s.csv", tmp_path / "s.md", title, notes)
    text = (tmp_path / "s.md").read_text()
    assert text.startswith("## Accuracy per subject on the preliminary test, worst first")
    assert pd.read_csv(tmp_path / "s.csv")["subject"].tolist() == ["s2", "s5", "s3", "s4", "s1"]


def test_without_subject_ids_images_are_grouped_by_class() -> None:
    ensemble = _table(known=False)
    frame, title, notes = subject_table(ensemble, {}, "test", 0.5, "all", "preliminary test")
    assert frame["subject"].tolist() == ["no subject ID (hem)", "no subject ID (all)"]
    assert frame["images"].tolist() == [9, 6] and frame["ensemble errors"].tolist() == [5, 2]
    assert frame["ensemble vote"].isna().all()
    assert "no subject IDs" in title and "preliminary test" in title
    assert any("grouped by class" in n for n in notes)


def test_validation_split_and_missing_member_rows() -> None:
    ensemble = _table()
    frame, title, notes = subject_table(ensemble, {}, "val", 0.5, "all", "validation (fold_2)")
    assert frame["subject"].tolist() == ["s1"] and frame["ensemble errors"].tolist() == [1]
    assert "validation" in title and any("optimistic" in n for n in notes)
    with pytest.raises(DataError, match="lack 1 of the ensemble's test images"):
        subject_table(ensemble, {"m": ensemble[ensemble["path"] != "s3_1.bmp"]}, "test")
    empty, _, notes = subject_table(ensemble, {}, "final")
    assert empty.empty and "none shown" in notes[0]


def test_scored_split_prefers_a_labelled_test() -> None:
    table = _table()
    assert scored_split(table) == "test" and scored_split(table, "val") == "val"
    table.loc[table["split"] == "test", "label"] = ""
    assert scored_split(table) == "val"
