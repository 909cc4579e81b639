from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from leukoscope.data import READERS, detect_layout, read_dataset
from leukoscope.data.table import COLUMNS, table_problems
from leukoscope.errors import ConfigError, DataError

from .conftest import cell, write_allidb2, write_csv, write_folder, write_image


def kinds(table: pd.DataFrame) -> list[str]:
    return [p["kind"] for p in table_problems(table)]


def test_registry_lists_every_layout() -> None:
    assert set(READERS.names()) == {"cnmc", "allidb2", "folder", "csv"}


# --- C-NMC -----------------------------------------------------------------------------------------


def test_cnmc_reads_folds_prelim_and_final(cnmc_master: Path) -> None:
    table = read_dataset(cnmc_master)
    assert list(table.columns[: len(COLUMNS)]) == COLUMNS
    assert table.attrs["layout"] == "cnmc"
    assert kinds(table) == []
    counts = table["split"].value_counts().to_dict()
    assert counts == {"fold_0": 8, "fold_1": 8, "fold_2": 8, "prelim": 6, "final": 2}
    training = table[table["split"].str.startswith("fold_")]
    # subject and label come from the name, and agree with the folder
    for row in training.itertuples():
        name = Path(row.path).name
        assert name.startswith(row.subject + "_") and name.endswith(f"_{row.label}.bmp")
        assert Path(row.path).parent.name == row.label
    assert training["subject_known"].all()
    assert training.groupby("subject")["split"].nunique().max() == 1  # official folds share no subject


def test_cnmc_prelim_labels_come_from_the_csv(cnmc_master: Path) -> None:
    table = read_dataset(cnmc_master)
    labels = pd.read_csv(cnmc_master / "validation_data/C-NMC_test_prelim_phase_data_labels.csv")
    expected = {r.new_names: ("all" if r.labels == 1 else "hem", r.Patient_ID) for r in labels.itertuples()}
    prelim = table[table["split"] == "prelim"]
    assert len(prelim) == len(expected) == 6
    for row in prelim.itertuples():
        label, patient = expected[Path(row.path).name]
        assert row.label == label
        assert patient.upper().startswith(row.subject + "_")
        assert row.subject_known


def test_cnmc_final_is_unlabelled_and_centre_cropped(cnmc_master: Path) -> None:
    final = read_dataset(cnmc_master).query("split == 'final'")
    assert len(final) == 2
    assert (final["label"] == "").all()
    assert (final["center_crop"] == 450).all()
    assert not final["subject_known"].any()
    assert final["subject"].is_unique


def test_cnmc_lower_case_healthy_prefix_is_the_same_subject(cnmc: Path) -> None:
    hem = sorted((cnmc / "training_data").glob("fold_*/hem/UID_H*_hem.bmp"))
    first = hem[0]
    subject = re.match(r"(UID_H\d+)_", first.name).group(1)
    lower = first.with_name(first.name.replace("UID_H", "UID_h", 1))
    first.rename(lower)
    table = read_dataset(cnmc)
    row = table[table["path"] == str(lower)]
    assert len(row) == 1
    assert row["subject"].item() == subject
    assert kinds(table) == []
    assert table.loc[table["subject"] == subject, "split"].nunique() == 1


def test_cnmc_unparseable_and_mismatched_names_are_reported_not_guessed(cnmc: Path) -> None:
    bad_name = write_image(cnmc / "training_data/fold_0/all/cell_17.bmp", cell(1))
    wrong_class = write_image(cnmc / "training_data/fold_1/all/UID_77_1_1_hem.bmp", cell(2))
    table = read_dataset(cnmc)
    problems = {p["path"]: p for p in table_problems(table)}
    assert problems[str(bad_name)]["kind"] == "unparsed_name"
    assert problems[str(wrong_class)]["kind"] == "label_mismatch"
    assert "'hem'" in problems[str(wrong_class)]["message"]
    assert str(bad_name) not in set(table["path"]) and str(wrong_class) not in set(table["path"])


def test_cnmc_prelim_without_labels_row_or_csv(cnmc: Path) -> None:
    csv_path = cnmc / "validation_data/C-NMC_test_prelim_phase_data_labels.csv"
    lines = csv_path.read_text().splitlines()
    dropped = lines[1].split(",")[1]
    csv_path.write_text("\n".join([lines[0], *lines[2:], "UID_9_1_1_all.bmp,999.bmp,1"]) + "\n")
    table = read_dataset(cnmc)
    found = {(p["kind"], Path(p["path"]).name) for p in table_problems(table)}
    assert ("missing_label", dropped) in found
    assert ("missing_file", "999.bmp") in found
    prelim = table[table["split"] == "prelim"]
    assert prelim.loc[prelim["path"].str.endswith("/" + dropped), "label"].item() == ""

    csv_path.unlink()
    table = read_dataset(cnmc)
    prelim = table[table["split"] == "prelim"]
    assert (prelim["label"] == "").all() and not prelim["subject_known"].any()
    assert kinds(table) == ["missing_file"]


@pytest.mark.parametrize("where", ["root", "parent", "training_data"])
def test_cnmc_is_detected_from_nearby_folders(cnmc_master: Path, where: str) -> None:
    path = {"root": cnmc_master, "parent": cnmc_master.parent, "training_data": cnmc_master / "training_data"}
    assert detect_layout(path[where]) == "cnmc"
    assert len(read_dataset(path[where])) == 32


# --- ALL-IDB2, folder, CSV ---------------------------------------------------------------------------


def test_allidb2_names_give_labels_and_no_subjects(tmp_path: Path) -> None:
    root = write_allidb2(tmp_path / "ALL_IDB2", n=4)
    write_image(root / "img" / "readme_picture.tif", cell(9))
    assert detect_layout(root) == "allidb2"
    table = read_dataset(root)
    by_name = dict(zip(table["path"].map(lambda p: Path(p).name), table["label"], strict=True))
    assert by_name == {"Im001_1.tif": "all", "Im002_0.tif": "hem", "Im003_1.tif": "all", "Im004_0.tif": "hem"}
    assert not table["subject_known"].any() and table["subject"].is_unique
    assert kinds(table) == ["unparsed_name"]


def test_folder_any_number_of_classes_and_formats(tmp_path: Path) -> None:
    root = write_folder(
        tmp_path / "cells", {"a": 3, "b": 2, "c": 4}, suffixes=(".png", ".jpg", ".bmp", ".tif")
    )
    write_image(root / "c" / "nested" / "deep.png", cell(99))
    (root / "empty").mkdir()
    assert detect_layout(root) == "folder"
    table = read_dataset(root)
    assert table["label"].value_counts().to_dict() == {"c": 5, "a": 3, "b": 2}
    assert table["source"].eq("folder").all() and not table["subject_known"].any()
    assert table["subject"].is_unique
    assert {Path(p).suffix for p in table["path"]} == {".png", ".jpg", ".bmp", ".tif"}
    assert kinds(table) == ["empty_folder"]


def test_csv_manifest_paths_are_relative_to_the_csv(tmp_path: Path) -> None:
    write_image(tmp_path / "imgs" / "x.png", cell(1))
    write_image(tmp_path / "imgs" / "y.png", cell(2))
    csv_path = write_csv(tmp_path, [("imgs/x.png", "all", "P1", "train"), ("imgs/y.png", "hem", "", "test")])
    assert detect_layout(csv_path) == "csv"
    table = read_dataset(csv_path)
    assert table["path"].tolist() == [str(tmp_path / "imgs/x.png"), str(tmp_path / "imgs/y.png")]
    assert table["subject"].tolist() == ["P1", "imgs/y.png"]
    assert table["subject_known"].tolist() == [True, False]
    assert table["split"].tolist() == ["train", "test"]


def test_csv_manifest_without_label_column_is_refused(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path, [("a.png",)], header="path")
    with pytest.raises(DataError, match="lacks column"):
        read_dataset(csv_path)


# --- errors --------------------------------------------------------------------------------------------


def test_missing_path_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_dataset(tmp_path / "nope")
    line = info.value.one_line()
    assert "dataset not found" in line and str(tmp_path / "nope") in line and "\n" not in line


@pytest.mark.parametrize("make", ["empty_dir", "empty_class_dirs", "text_file"])
def test_nothing_readable_is_a_data_error(tmp_path: Path, make: str) -> None:
    target = tmp_path / "data"
    target.mkdir()
    if make == "empty_class_dirs":
        (target / "a").mkdir()
        (target / "b").mkdir()
    if make == "text_file":
        target = target / "notes.txt"
        target.write_text("hello")
    with pytest.raises(DataError, match=re.escape(str(target))):
        read_dataset(target)


def test_empty_cnmc_folder_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "training_data" / "fold_0" / "all").mkdir(parents=True)
    with pytest.raises(DataError, match="no C-NMC images"):
        read_dataset(tmp_path)


def test_unknown_reader_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown dataset reader"):
        read_dataset(tmp_path, reader="nope")
