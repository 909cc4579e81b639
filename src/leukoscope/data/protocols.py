"""Which split does what in a run (the protocol), and the checks that the data can serve it.

- `paper` (the paper's Table 1): train on every training fold, validate (early stopping, loss and
  ensemble choice) on the labelled preliminary test, predict the final test. The preliminary test is
  then both the selection set and the scored set: optimistic, as the paper's Table 3 is.
- `heldout`: train on the folds but `val_fold`, validate on `val_fold`, score on the preliminary test,
  which neither training nor any choice has seen (data with its own `val` split use it; data with a test
  split but no folds hold out `val_fraction` of the training subjects). `official` is its old name.
- `cv`: the labelled images outside any test split in K subject-grouped folds (C-NMC's three own folds
  when K = 3); fold k only scores, and an inner, subject-grouped, class-stratified share of the other
  folds' subjects (`inner_fraction`) validates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoscope.config import opt
from leukoscope.errors import DataError

PROTOCOLS = ("paper", "heldout", "cv")
PROTOCOL_ALIASES = {"official": "heldout"}
EVAL_ROLES = {"val", "valid", "validation", "test", "testing", "prelim"}
TEST_ROLES = {"test", "testing", "prelim"}
CV_HINT = "use protocol: cv (subject-grouped folds of your own data)"


@dataclass
class CvConfig:
    folds: int = opt(3, "number of subject-grouped folds (C-NMC's own when 3)", minimum=2)
    inner_fraction: float = opt(
        0.2,
        "share of each outer fold's training subjects that validates (early stopping, loss and ensemble "
        "choice), grouped by subject, stratified by class",
        minimum=0.01,
        maximum=0.9,
    )


def canonical_protocol(protocol: str) -> str:
    protocol = PROTOCOL_ALIASES.get(protocol, protocol)
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown protocol {protocol!r}", hint=f"choose one of: {', '.join(PROTOCOLS)}")
    return protocol


def choose_classes(
    train: pd.DataFrame, classes: list[str] | None, where: str | Path, setting: str = "dataset.classes"
) -> list[str]:
    """The configured classes, or the training split's; a classifier needs two with images.

    The one choice the workflow's sample sheet and `leukoscope train` share; `setting` names the option
    the user set (`dataset.classes` in the workflow, `data.classes` / `--classes` for the CLI).
    """
    from leukoscope.data.table import class_names

    present = class_names(train)
    chosen = list(classes) if classes else present
    missing = [c for c in chosen if c not in present]
    if missing:
        raise DataError(
            f"{setting} names {missing[0]!r}, which has no training images",
            path=where,
            hint=f"the data's classes are: {', '.join(present) or 'none'}",
        )
    if len(chosen) < 2:
        raise DataError(
            f"the dataset has only one class ({chosen[0] if chosen else 'none'})",
            path=where,
            hint=f"a classifier needs labelled images of at least two classes (check the data and {setting})",
        )
    return chosen


def choose_positive(
    class_names: list[str], positive: str | None, setting: str = "dataset.positive_class"
) -> str | None:
    """Two classes: the configured positive class, else 'all' (the leukemic blast) when present."""
    if len(class_names) != 2:
        return None
    chosen = positive or ("all" if "all" in class_names else class_names[1])
    if chosen not in class_names:
        raise DataError(
            f"{setting} {chosen!r} is not one of the classes",
            hint=f"choose one of: {', '.join(class_names)}",
        )
    return chosen


def training_pool(table: pd.DataFrame) -> pd.DataFrame:
    """Labelled images outside the test and final splits: what any protocol trains (and validates) on."""
    roles = table["split"].str.lower()
    return table[(table["label"] != "") & ~roles.isin(TEST_ROLES) & (roles != "final")]


def labelled_test(table: pd.DataFrame) -> pd.DataFrame:
    return table[(table["label"] != "") & table["split"].str.lower().isin(TEST_ROLES)]


def check_dataset_plan(
    table: pd.DataFrame,
    *,
    protocol: str,
    folds: int = 3,
    val_fold: int | None = 2,
    classes: list[str] | None = None,
    positive_class: str | None = None,
) -> tuple[list[str], str | None]:
    """Before any job: the protocol fits the data, the classes exist, every class can fill the folds.

    Returns (class names, positive class). Everything here reads file names only (no decoding), so the
    Snakefile runs it at parse time on a local dataset.
    """
    where = table.attrs.get("root", "")
    protocol = canonical_protocol(protocol)
    pool = training_pool(table)
    _refuse_empty_class_folders(table, classes)
    if protocol in ("paper", "heldout") and labelled_test(table).empty:
        layout = table.attrs.get("layout", "this layout")
        role = "validates" if protocol == "paper" else "scores"
        raise DataError(
            f"protocol {protocol} {role} on the data's labelled preliminary test set, and this dataset "
            f"({layout}) has none",
            path=where,
            hint=CV_HINT,
        )
    if protocol == "heldout" and val_fold is not None and not _has_own_val(pool):
        from leukoscope.data.splits import official_folds

        found = official_folds(pool)
        if found and f"fold_{val_fold}" not in found:
            raise DataError(
                f"val_fold {val_fold} is not one of the dataset's folds ({', '.join(found)})",
                path=where,
                hint="set val_fold to one of them",
            )
    names = choose_classes(pool, classes, where)
    if protocol == "cv":
        _require_subjects_per_class(pool[pool["label"].isin(names)], folds, where)
    return names, choose_positive(names, positive_class)


def _has_own_val(pool: pd.DataFrame) -> bool:
    return bool(pool["split"].str.lower().isin(EVAL_ROLES - TEST_ROLES).any())


def _refuse_empty_class_folders(table: pd.DataFrame, classes: list[str] | None) -> None:
    from leukoscope.data.table import table_problems

    for found in table_problems(table):
        name = Path(found["path"]).name
        if found["kind"] == "empty_folder" and (classes is None or name in classes):
            raise DataError(
                f"class folder {name!r} holds no images",
                path=found["path"],
                hint="add its images, remove the folder, or list the classes to use in dataset.classes",
            )


def _require_subjects_per_class(pool: pd.DataFrame, folds: int, where: Any) -> None:
    """Every class needs a subject in every fold, or some fold cannot score it."""
    per_class = pool.groupby("label")["subject"].nunique()
    for label, n in per_class.items():
        if n < folds:
            unit = "subjects" if pool["subject_known"].all() else "images (each its own subject)"
            raise DataError(
                f"class {label!r} has {n} {unit}, fewer than the {folds} cv folds",
                path=where,
                hint="lower cv.folds, or add subjects of that class",
            )


def held_out_parts(
    table: pd.DataFrame,
    protocol: str,
    val_fold: int | None,
    val_fraction: float,
    classes: list[str],
    limit: int | None,
    seed: int,
) -> tuple[dict[str, pd.DataFrame], list[str], int]:
    """The crop parts of paper / heldout, notes, duplicates dropped. paper: train = every training image,
    val = the labelled test; heldout: `make_splits`' split."""
    from leukoscope.config import DataConfig
    from leukoscope.data.splits import assert_disjoint, cap_per_class, drop_cross_duplicates, make_splits

    labelled = table[(table["label"] != "") & (table["split"].str.lower() != "final")]
    labelled.attrs.update(table.attrs)
    if protocol == "paper":
        splits = {"train": training_pool(labelled), "val": labelled_test(labelled)}
        splits = {k: v[v["label"].isin(classes)].reset_index(drop=True) for k, v in splits.items()}
        if limit:
            splits = {k: cap_per_class(v, limit, seed) for k, v in splits.items()}
        splits = drop_cross_duplicates(splits)
        assert_disjoint(splits)
        notes = [
            "protocol paper: training = every training fold; validation = the labelled preliminary test, "
            "which also chooses the models and is scored (optimistic: see protocol heldout)"
        ]
    else:
        own_val = _has_own_val(training_pool(labelled))
        folds_known = _folds_known(labelled)
        fold = val_fold if folds_known and not own_val else None
        cfg = DataConfig(classes=classes, val_fold=fold, val_fraction=val_fraction, limit_per_class=limit)
        splits = make_splits(labelled, cfg, seed)
        how = (
            "the data's own validation split" if own_val
            else f"the data's fold_{fold}" if fold is not None
            else f"{val_fraction:.0%} of the training subjects, held out (subject-grouped)"
        )  # fmt: skip
        notes = [f"protocol heldout: validation = {how}; the labelled test split only scores"]
    dropped = sum(len(df.attrs.get("dropped_duplicates", [])) for df in splits.values())
    final = table[table["split"].str.lower() == "final"]
    parts = {"train": splits["train"], "val": splits["val"]}
    if protocol == "heldout":
        parts["test"] = splits.get("test", table.iloc[0:0])
    parts["final"] = final
    return parts, notes, dropped


def _folds_known(table: pd.DataFrame) -> bool:
    from leukoscope.data.splits import official_folds

    return bool(official_folds(training_pool(table)))


def cv_parts(
    table: pd.DataFrame, k: int, inner_fraction: float, classes: list[str], limit: int | None, seed: int
) -> tuple[dict[str, pd.DataFrame], list[str], int]:
    """The cv pool (outer `fold`, `inner` validation bits per image), notes, duplicates dropped."""
    from leukoscope.data.hashing import find_identical
    from leukoscope.data.splits import cap_per_class, grouped_holdout, grouped_kfold, official_folds

    pool = training_pool(table)
    pool = pool[pool["label"].isin(classes)]
    if limit:
        pool = cap_per_class(pool, limit, seed)
    twins = {p for group in find_identical(pool["path"].tolist()) for p in group[1:]}
    pool = pool[~pool["path"].isin(twins)].reset_index(drop=True)
    pool.attrs.update(table.attrs)
    fold = np.full(len(pool), -1, dtype=np.int64)
    for i, (_, val_idx) in enumerate(grouped_kfold(pool, k, seed)):
        fold[val_idx] = i
    inner = np.zeros(len(pool), dtype=np.int64)
    for i in range(k):
        others = np.flatnonzero(fold != i)
        rest = pool.iloc[others].reset_index(drop=True)
        _, val_idx = grouped_holdout(rest, inner_fraction, seed + i)
        inner[others[val_idx]] |= 1 << i
    pool = pool.assign(fold=fold, inner=inner)
    own = len(official_folds(pool)) == k
    subjects = "subjects" if pool["subject_known"].all() else "images (no subject ids: each its own subject)"
    notes = [
        f"protocol cv: {k} folds grouped by {subjects}" + (", the data's own" if own else ", stratified")
        + f"; each fold scores only; {inner_fraction:.0%} of the other folds' subjects validate"
    ]  # fmt: skip
    return {"pool": pool}, notes, len(twins)
