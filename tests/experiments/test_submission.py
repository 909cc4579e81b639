"""The ISBI submission: numeric order, one 0/1 line per image, zipped."""

from __future__ import annotations

import zipfile

import pytest

from leukoscope.errors import DataError
from leukoscope.experiments.submission import PREDICT_NAME, labels_to_01, write_isbi_submission


def test_numeric_order_not_lexicographic(tmp_path) -> None:
    stems = [1, 10, 2, 3, 4, 5, 6, 7, 8, 9, 11, 100]
    paths = [f"/data/C-NMC_test_final_phase_data/{n}.bmp" for n in stems]
    labels = [n % 2 for n in stems]  # odd numbers are ALL
    out = write_isbi_submission(paths, labels, tmp_path / "sub.zip")
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == [PREDICT_NAME]
        lines = zf.read(PREDICT_NAME).decode().splitlines()
    expected_order = sorted(stems)
    assert lines == [str(n % 2) for n in expected_order]
    assert lines[:3] == ["1", "0", "1"]  # 1, 2, 3 — not 1, 10, 100


def test_labels_and_errors(tmp_path) -> None:
    assert labels_to_01(["all", "hem", "ALL"]) == [1, 0, 1]
    with pytest.raises(DataError, match="numerically named"):
        write_isbi_submission(["a.bmp"], [1], tmp_path / "x.zip")
    with pytest.raises(DataError, match="share the number"):
        write_isbi_submission(["1.bmp", "x/1.bmp"], [1, 0], tmp_path / "x.zip")
    with pytest.raises(DataError, match="0 or 1"):
        write_isbi_submission(["1.bmp"], [2], tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


def test_the_workflows_submission_calls_the_final_test_at_the_specs_threshold(tmp_path) -> None:
    import pandas as pd

    import stage_files as S
    from leukoscope.experiments.submission import submission_stage

    files = S.write_chain(tmp_path)
    out = submission_stage(files["ensemble/predictions"], files["ensemble/spec"], tmp_path / "sub.zip")
    with zipfile.ZipFile(out) as zf:
        lines = zf.read(PREDICT_NAME).decode().splitlines()
    final = pd.read_parquet(files["ensemble/predictions"]).query("split == 'final'")
    assert final["path"].tolist() == ["1.bmp", "2.bmp", "3.bmp"]
    assert lines == ["1" if p >= 0.5 else "0" for p in final["p_all"]]
