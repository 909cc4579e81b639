from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leukoscope.config import DataConfig
from leukoscope.data import assert_disjoint, grouped_kfold, make_splits, read_dataset
from leukoscope.data.splits import find_leaks, subjects_known
from leukoscope.data.table import make_table
from leukoscope.errors import ConfigError, DataError

from .conftest import cell, write_csv, write_folder, write_image


def subjects(df: pd.DataFrame) -> set[str]:
    return set(df["subject"])


def training(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["split"].str.startswith("fold_")].reset_index(drop=True)


def fake_table(n_subjects: int = 12, per_subject: int = 3) -> pd.DataFrame:
    """A table of files that need not exist (for index-only functions): 2:1 all:hem subjects."""
    rows = [
        {"path": f"/x/s{s}_{i}.bmp", "label": "all" if s % 3 else "hem", "subject": f"S{s}", "split": ""}
        for s in range(n_subjects)
        for i in range(per_subject)
    ]
    return make_table(rows)


def test_cnmc_official_fold_as_validation(cnmc_master: Path) -> None:
    splits = make_splits(read_dataset(cnmc_master), DataConfig(val_fold=1), seed=0)
    assert set(splits) == {"train", "val", "test"}
    assert set(splits["train"]["split"]) == {"fold_0", "fold_2"}
    assert set(splits["val"]["split"]) == {"fold_1"}
    assert set(splits["test"]["split"]) == {"prelim"}
    assert len(splits["train"]) + len(splits["val"]) == 24 and len(splits["test"]) == 6
    assert not subjects(splits["train"]) & subjects(splits["val"])
    assert splits["train"].attrs["classes"] == ["all", "hem"]
    assert splits["val"].attrs["subject_known"] is True


def test_grouped_holdout_keeps_subjects_whole_and_is_seeded(cnmc_master: Path) -> None:
    table = read_dataset(cnmc_master)
    cfg = DataConfig(val_fraction=0.34)
    a = make_splits(table, cfg, seed=1)
    b = make_splits(table, cfg, seed=1)
    assert a["val"]["path"].tolist() == b["val"]["path"].tolist()
    assert not subjects(a["train"]) & subjects(a["val"])
    assert set(a["val"]["label"]) == {"all", "hem"}  # a fold with every class is preferred
    assert len(a["train"]) + len(a["val"]) == 24


def test_official_folds_are_used_for_k_equal_to_their_number(cnmc_master: Path) -> None:
    train = training(read_dataset(cnmc_master))
    folds = grouped_kfold(train, 3, seed=0)
    for i, (tr, va) in enumerate(folds):
        assert set(train["split"].iloc[va]) == {f"fold_{i}"}
        assert len(tr) + len(va) == len(train)


@pytest.mark.parametrize("k", [2, 4])
def test_grouped_kfold_folds_are_subject_disjoint_and_cover_everything(k: int) -> None:
    table = fake_table()
    folds = grouped_kfold(table, k, seed=7)
    assert len(folds) == k
    seen = np.concatenate([va for _, va in folds])
    assert sorted(seen) == list(range(len(table)))  # every row validated exactly once
    for tr, va in folds:
        assert not set(table["subject"].iloc[tr]) & set(table["subject"].iloc[va])
    assert [v.tolist() for _, v in grouped_kfold(table, k, seed=7)] == [v.tolist() for _, v in folds]


def test_grouped_kfold_needs_enough_subjects() -> None:
    with pytest.raises(DataError, match="at least 5 subjects"):
        grouped_kfold(fake_table(n_subjects=3), 5, seed=0)


def test_folder_data_is_split_per_image_and_says_so(tmp_path: Path) -> None:
    table = read_dataset(write_folder(tmp_path / "f", {"a": 6, "b": 6}))
    splits = make_splits(table, DataConfig(val_fraction=0.25), seed=0)
    assert set(splits) == {"train", "val"}
    assert len(splits["train"]) + len(splits["val"]) == 12
    assert splits["train"].attrs["subject_known"] is False
    assert subjects_known(splits["val"]) is False


def test_classes_restrict_and_order(cnmc_master: Path) -> None:
    table = read_dataset(cnmc_master)
    splits = make_splits(table, DataConfig(val_fold=0, classes=["hem", "all"]), seed=0)
    assert splits["val"].attrs["classes"] == ["hem", "all"]
    with pytest.raises(DataError, match="class\\(es\\) blast not in the data"):
        make_splits(table, DataConfig(classes=["all", "blast"]), seed=0)


def test_limit_per_class_caps_deterministically(cnmc_master: Path) -> None:
    table = read_dataset(cnmc_master)
    cfg = DataConfig(val_fold=2, limit_per_class=2)
    a, b = make_splits(table, cfg, seed=5), make_splits(table, cfg, seed=5)
    for name in a:
        assert a[name]["label"].value_counts().max() <= 2
        assert a[name]["path"].tolist() == b[name]["path"].tolist()
    assert a["train"]["label"].value_counts().to_dict() == {"all": 2, "hem": 2}


def test_val_fold_that_does_not_exist(cnmc_master: Path) -> None:
    with pytest.raises(ConfigError, match="val_fold 7"):
        make_splits(read_dataset(cnmc_master), DataConfig(val_fold=7), seed=0)


def test_validation_from_another_dataset(cnmc_master: Path, tmp_path: Path) -> None:
    other = write_folder(tmp_path / "other", {"all": 2, "hem": 2})
    splits = make_splits(read_dataset(cnmc_master), DataConfig(val=str(other)), seed=0)
    assert len(splits["train"]) == 24 and len(splits["val"]) == 4
    assert set(splits["val"]["source"]) == {"folder"}


def test_csv_split_column_is_honoured(tmp_path: Path) -> None:
    rows = []
    for i, split in enumerate(["train"] * 4 + ["val"] * 2 + ["test"] * 2):
        write_image(tmp_path / f"{i}.png", cell(i))
        rows.append((f"{i}.png", "all" if i % 2 else "hem", f"P{i}", split))
    splits = make_splits(read_dataset(write_csv(tmp_path, rows)), DataConfig(), seed=0)
    assert {k: len(v) for k, v in splits.items()} == {"train": 4, "val": 2, "test": 2}


# --- leaks ---------------------------------------------------------------------------------------------


def test_shared_subject_and_identical_file_are_both_named(tmp_path: Path) -> None:
    a = write_image(tmp_path / "a.png", cell(1))
    b = write_image(tmp_path / "b.png", cell(2))
    c = write_image(tmp_path / "c.png", cell(3))
    copy = tmp_path / "copy_of_c.png"
    shutil.copy(c, copy)
    train = make_table(
        [{"path": str(a), "label": "all", "subject": "P1"}, {"path": str(c), "label": "all", "subject": "P2"}]
    )
    val = make_table(
        [
            {"path": str(b), "label": "all", "subject": "P1"},
            {"path": str(copy), "label": "all", "subject": "P3"},
        ]
    )
    with pytest.raises(DataError) as info:
        assert_disjoint({"train": train, "val": val})
    message = info.value.one_line()
    assert "P1 (train, val)" in message
    assert "c.png" in message and "copy_of_c.png" in message
    assert "P2" not in message and "P3" not in message and "a.png" not in message


def test_disjoint_splits_pass_and_unknown_subjects_do_not_count(tmp_path: Path) -> None:
    a = write_image(tmp_path / "a.png", cell(1))
    b = write_image(tmp_path / "b.png", cell(2))
    train = make_table([{"path": str(a), "label": "all", "subject": "same", "subject_known": False}])
    val = make_table([{"path": str(b), "label": "all", "subject": "same", "subject_known": False}])
    assert_disjoint({"train": train, "val": val})
    assert find_leaks({"train": train, "val": val}) == ({}, [])


def test_make_splits_drops_validation_copies_of_training_files(cnmc: Path) -> None:
    source = sorted((cnmc / "training_data/fold_0/all").glob("*.bmp"))[0]
    clone = cnmc / "training_data/fold_1/all/UID_90_1_1_all.bmp"  # same pixels, new "subject"
    shutil.copy(source, clone)
    splits = make_splits(read_dataset(cnmc), DataConfig(val_fold=1), seed=0)
    assert str(clone) not in set(splits["val"]["path"])
    dropped = splits["val"].attrs["dropped_duplicates"]
    assert dropped == [{"path": str(clone), "same_as": str(source), "split": "train"}]
    assert_disjoint(splits)


def test_make_splits_refuses_a_subject_in_two_folds(cnmc: Path) -> None:
    moved = sorted((cnmc / "training_data/fold_0/all").glob("*.bmp"))[0]
    shutil.move(moved, cnmc / "training_data/fold_1/all" / moved.name)
    subject = "_".join(moved.name.split("_")[:2])
    with pytest.raises(DataError, match=f"{subject} \\(train, val\\)"):
        make_splits(read_dataset(cnmc), DataConfig(val_fold=1), seed=0)
