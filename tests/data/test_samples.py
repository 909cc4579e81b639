"""The workflow's sample sheet: splits and folds by subject, no leaks, every image once, clear refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from leukoscope.data.protocols import check_dataset_plan
from leukoscope.data.readers import read_dataset
from leukoscope.data.samples import build_sample_sheet, scope_rows
from leukoscope.data.synth import write_cnmc_synth
from leukoscope.errors import DataError


@pytest.fixture(scope="module")
def cnmc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("samples") / "C-NMC_Leukemia"
    write_cnmc_synth(root, subjects=9, cells_per_subject=4, size=48, prelim=8, final=4, seed=3)
    return root


def test_paper_protocol_trains_on_every_fold_and_validates_on_the_prelim(cnmc: Path) -> None:
    sheet = build_sample_sheet(cnmc, protocol="paper")
    frame = sheet.frame
    assert set(frame[frame["part"] == "train"]["dataset_split"]) == {"fold_0", "fold_1", "fold_2"}
    assert set(frame[frame["part"] == "val"]["dataset_split"]) == {"prelim"}
    assert set(frame["part"]) == {"train", "val", "final"}  # no other labelled test: prelim is both
    summary = sheet.summary()
    assert summary["parts"]["train"]["images"] == 36 and summary["parts"]["val"]["images"] == 8
    assert "optimistic" in sheet.notes[0]


def test_heldout_protocol_uses_the_folds_prelim_and_final(cnmc: Path) -> None:
    sheet = build_sample_sheet(cnmc, protocol="official", val_fold=2)  # the old name of heldout
    assert sheet.protocol == "heldout"
    frame = sheet.frame
    assert set(frame[frame["part"] == "val"]["dataset_split"]) == {"fold_2"}
    assert set(frame[frame["part"] == "train"]["dataset_split"]) == {"fold_0", "fold_1"}
    assert set(frame[frame["part"] == "test"]["dataset_split"]) == {"prelim"}
    final = frame[frame["part"] == "final"]
    assert len(final) == 4 and (final["y"] == -1).all() and (final["center_crop"] == 450).all()
    train, val = set(sheet.part("train")["subject"]), set(sheet.part("val")["subject"])
    assert not train & val
    for part in ("train", "val", "test", "final"):  # rows number each crop file from 0
        assert sheet.part(part)["row"].tolist() == list(range(len(sheet.part(part))))
    summary = sheet.summary()
    assert summary["class_names"] == ["all", "hem"] and summary["positive_class"] == "all"
    assert summary["parts"]["train"]["images"] + summary["parts"]["val"]["images"] == 36


def test_cv_protocol_deals_subjects_into_folds(cnmc: Path) -> None:
    sheet = build_sample_sheet(cnmc, protocol="cv", folds=3, inner_fraction=0.34)
    pool = sheet.part("pool")
    assert sorted(pool["fold"].unique()) == [0, 1, 2]
    assert (pool.groupby("subject")["fold"].nunique() == 1).all()  # a subject sits in one fold
    assert "the data's own" in sheet.notes[0]
    per_fold = sheet.summary()["per_fold"]["fold_0"]
    assert per_fold["test"]["images"] == 12 and per_fold["val"]["images"] + per_fold["train"]["images"] == 24
    for k in range(3):  # nested: the inner validation subjects come from the other folds, both classes
        train, val, test = (scope_rows(pool, role, k) for role in ("train", "val", "test"))
        assert set(test["fold"]) == {k} and k not in set(val["fold"]) | set(train["fold"])
        assert not set(val["subject"]) & set(train["subject"]) and set(val["label"]) == {"all", "hem"}


def test_identical_files_are_dropped_from_later_splits(cnmc: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(cnmc, copy)
    train_file = next((copy / "training_data" / "fold_0" / "all").glob("*.bmp"))
    prelim = copy / "validation_data" / "C-NMC_test_prelim_phase_data" / "1.bmp"
    prelim.write_bytes(train_file.read_bytes())  # a test image identical to a training image
    sheet = build_sample_sheet(copy, protocol="official", val_fold=2)
    assert sheet.dropped_duplicates == 1
    assert str(prelim) not in set(sheet.frame["path"])


def test_manifest_data_with_a_test_split_but_no_folds_holds_out_subjects(tmp_path: Path) -> None:
    import numpy as np

    from leukoscope.data.synth import SubjectStyle, encode_bmp, render_cell

    rng = np.random.default_rng(1)
    lines = ["path,label,subject,split"]
    for label in ("blast", "normal"):  # neither all nor hem: the classes come from the data
        for i in range(12):
            name = f"{label}_{i}.bmp"
            style = SubjectStyle.draw(rng)
            (tmp_path / name).write_bytes(encode_bmp(render_cell(rng, "all", style, size=40)))
            lines.append(f"{name},{label},p{label}{i // 2},{'test' if i >= 10 else 'train'}")
    (tmp_path / "cells.csv").write_text("\n".join(lines) + "\n")
    sheet = build_sample_sheet(tmp_path / "cells.csv", protocol="heldout", val_fold=2, val_fraction=0.3)
    assert sheet.class_names == ["blast", "normal"] and sheet.positive_class == "normal"
    assert "held out" in sheet.notes[0]
    assert len(sheet.part("val")) and len(sheet.part("test")) == 4


def test_one_class_is_refused(cnmc: Path) -> None:
    table = read_dataset(cnmc)
    with pytest.raises(DataError, match="only one class"):
        check_dataset_plan(table, protocol="paper", classes=["all"])
    with pytest.raises(DataError, match="'blast', which has no training images"):
        check_dataset_plan(table, protocol="paper", classes=["all", "blast"])
    with pytest.raises(DataError, match="val_fold 5 is not one of the dataset's folds"):
        check_dataset_plan(table, protocol="heldout", val_fold=5)
