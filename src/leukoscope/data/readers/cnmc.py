"""C-NMC 2019 (ISBI 2019 challenge): three official training folds, a labelled preliminary test and an
unlabelled final test.

Subjects come from the file names (`UID_<subject>_<image>_<cell>_<all|hem>.bmp`); 36 real files spell the
healthy prefix in lower case (`UID_h3_...`), so parsing is case-insensitive and subjects are upper-cased.
A name that does not parse, or whose `_all/_hem` suffix contradicts its folder, is reported and left out,
never guessed: a wrong subject would silently leak a patient across folds.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from leukoscope.data.readers._base import (
    Reader,
    abspath,
    finish_table,
    list_images,
    own_subject,
    register_reader,
    subdirs,
)
from leukoscope.data.table import problem
from leukoscope.errors import DataError

CLASSES = ("all", "hem")
TRAIN_DIR = "training_data"
PRELIM_DIR = "validation_data/C-NMC_test_prelim_phase_data"
PRELIM_LABELS = "validation_data/C-NMC_test_prelim_phase_data_labels.csv"
FINAL_DIR = "testing_data/C-NMC_test_final_phase_data"
FINAL_CROP = 450  # the organisers: final-test images are 600x600, keep the centred 450x450
PRELIM_COLUMNS = ("Patient_ID", "new_names", "labels")

NAME_RE = re.compile(r"^UID_(H?\d+)_(\d+)_(\d+)_(all|hem)$", re.IGNORECASE)
PATIENT_RE = re.compile(r"^UID_(H?\d+)(?:[_.]|$)", re.IGNORECASE)
FOLD_RE = re.compile(r"^fold_\d+$")


def find_root(path: Path) -> Path | None:
    """The folder holding `training_data/` (also accepted: its parent, or `training_data/` itself)."""
    for candidate in (path, path / "C-NMC_Leukemia"):
        if (candidate / TRAIN_DIR).is_dir():
            return candidate
    if path.name == TRAIN_DIR and any(FOLD_RE.match(d.name) for d in subdirs(path)):
        return path.parent
    return None


def subject_of(code: str) -> str:
    """`h3` -> `UID_H3`: one spelling per subject, whatever case the file used."""
    return f"UID_{code.upper()}"


def parse_name(stem: str) -> tuple[str, str] | None:
    """(subject, label) from a training file name stem, or None when it is not C-NMC's pattern."""
    match = NAME_RE.match(stem)
    if match is None:
        return None
    return subject_of(match.group(1)), match.group(4).lower()


def read(path: Path) -> pd.DataFrame:
    root = find_root(path)
    if root is None:
        raise DataError(
            "not a C-NMC 2019 folder (no training_data/ inside)",
            path=path,
            hint="pass the folder that holds training_data/, e.g. C-NMC_Leukemia",
        )
    rows: list[dict] = []
    problems: list[dict[str, str]] = []
    _read_training(root, rows, problems)
    _read_prelim(root, rows, problems)
    _read_final(root, rows)
    return finish_table(
        rows,
        problems,
        root,
        empty="no C-NMC images found",
        hint="expected training_data/fold_N/{all,hem}/UID_*.bmp; check the download is complete",
    )


def _read_training(root: Path, rows: list[dict], problems: list[dict[str, str]]) -> None:
    for fold in subdirs(root / TRAIN_DIR):
        if not FOLD_RE.match(fold.name):
            problems.append(problem("unexpected_folder", fold, "not a fold_N folder: its files are ignored"))
            continue
        for class_dir in subdirs(fold):
            folder_label = class_dir.name.lower()
            if folder_label not in CLASSES:
                problems.append(
                    problem("unexpected_folder", class_dir, "not an all/hem folder: its files are ignored")
                )
                continue
            for image in list_images(class_dir):
                row = _training_row(image, folder_label, fold.name, problems)
                if row is not None:
                    rows.append(row)


def _training_row(image: Path, folder_label: str, fold: str, problems: list[dict[str, str]]) -> dict | None:
    parsed = parse_name(image.stem)
    if parsed is None:
        problems.append(
            problem(
                "unparsed_name",
                image,
                "name is not UID_<subject>_<image>_<cell>_<all|hem>: rename it or move it out; left out",
            )
        )
        return None
    subject, name_label = parsed
    if name_label != folder_label:
        problems.append(
            problem(
                "label_mismatch",
                image,
                f"name says {name_label!r} but the folder says {folder_label!r}: move or rename it; left out",
            )
        )
        return None
    return _row(image, folder_label, subject, fold, subject_known=True)


def _row(image: Path, label: str, subject: str, split: str, *, subject_known: bool, crop: int = 0) -> dict:
    return {
        "path": abspath(image),
        "label": label,
        "subject": subject,
        "split": split,
        "source": "cnmc",
        "subject_known": subject_known,
        "center_crop": crop,
    }


def _read_prelim(root: Path, rows: list[dict], problems: list[dict[str, str]]) -> None:
    images = list_images(root / PRELIM_DIR)
    if not images:
        return
    labels = _prelim_labels(root / PRELIM_LABELS, problems)
    for image in images:
        entry = labels.pop(image.name, None) if labels is not None else None
        if entry is None:
            if labels is not None:
                problems.append(problem("missing_label", image, "not in the labels CSV: kept as unlabelled"))
            rows.append(_row(image, "", own_subject(image, root), "prelim", subject_known=False))
            continue
        rows.append(_prelim_row(image, root, *entry, problems))
    for name in sorted(labels or {}):
        problems.append(
            problem("missing_file", root / PRELIM_DIR / name, "listed in the labels CSV, not found")
        )


def _prelim_labels(csv_path: Path, problems: list[dict[str, str]]) -> dict[str, tuple[str, str]] | None:
    """{new_name: (Patient_ID, label value)}, or None when there is no usable CSV (reported once)."""
    if not csv_path.is_file():
        problems.append(problem("missing_file", csv_path, "no labels CSV: prelim images stay unlabelled"))
        return None
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        problems.append(problem("bad_labels_file", csv_path, f"cannot parse ({type(exc).__name__})"))
        return None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in PRELIM_COLUMNS if c not in df.columns]
    if missing:
        problems.append(problem("bad_labels_file", csv_path, f"lacks columns {', '.join(missing)}"))
        return None
    pairs = zip(
        df["new_names"].str.strip(), df["Patient_ID"].str.strip(), df["labels"].str.strip(), strict=True
    )
    return {name: (pid, lab) for name, pid, lab in reversed(list(pairs))}  # the first entry wins


def _prelim_row(image: Path, root: Path, patient: str, value: str, problems: list[dict[str, str]]) -> dict:
    label = {"1": "all", "0": "hem"}.get(value, "")
    if not label:
        problems.append(problem("bad_label", image, f"label {value!r} is not 1 (ALL) or 0 (HEM): unlabelled"))
    match = PATIENT_RE.match(patient)
    if match is None:
        problems.append(
            problem(
                "unparsed_name", image, f"Patient_ID {patient!r} names no subject: image is its own subject"
            )
        )
        return _row(image, label, own_subject(image, root), "prelim", subject_known=False)
    return _row(image, label, subject_of(match.group(1)), "prelim", subject_known=True)


def _read_final(root: Path, rows: list[dict]) -> None:
    for image in list_images(root / FINAL_DIR):
        rows.append(_row(image, "", own_subject(image, root), "final", subject_known=False, crop=FINAL_CROP))


register_reader(
    Reader(
        name="cnmc",
        detect=lambda path: find_root(path) is not None,
        read=read,
        priority=0,
        description="C-NMC 2019: training_data/fold_N/{all,hem}, prelim test + labels CSV, final test",
    )
)
