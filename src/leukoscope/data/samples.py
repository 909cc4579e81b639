"""The workflow's sample sheet: every image once, with its split, fold and class, checked for leaks.

One row per image the workflow uses, with the sample-table columns (`leukoscope.data.table`) plus:

| column | meaning |
| --- | --- |
| dataset_split | the data's own split or fold (fold_0, prelim, final, ...) |
| part | the crop file the image goes to: train / val / test / final (official), pool / test / final (cv) |
| row | its row in that file |
| fold | cv: the fold whose validation set holds it (-1 elsewhere) |
| y | class index in `class_names` (-1: unlabelled, the final test) |

Protocols: `official` uses the data's own validation fold (C-NMC `val_fold`) or, on data without folds,
a subject-grouped hold-out; its labelled test split is C-NMC's preliminary test; the final test has no
public labels. `cv` deals the labelled non-test images into K subject-grouped folds (C-NMC's three own
folds when K = 3). Identical files are dropped from later splits (and, for cv, kept once in the pool),
and no subject or file may sit on two sides of any train/validation/test boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoscope.errors import DataError

EVAL_ROLES = {"val", "valid", "validation", "test", "testing", "prelim"}
TEST_ROLES = {"test", "testing", "prelim"}
OFFICIAL_PARTS = ("train", "val", "test", "final")
CV_PARTS = ("pool", "test", "final")
COLUMNS = [
    "path",
    "label",
    "subject",
    "subject_known",
    "dataset_split",
    "center_crop",
    "part",
    "row",
    "fold",
    "y",
]


@dataclass
class SampleSheet:
    frame: pd.DataFrame
    class_names: list[str]
    positive_class: str | None
    protocol: str
    folds: int
    layout: str
    root: str
    notes: list[str] = field(default_factory=list)
    dropped_duplicates: int = 0

    def part(self, name: str) -> pd.DataFrame:
        return self.frame[self.frame["part"] == name].sort_values("row")

    def summary(self) -> dict[str, Any]:
        """Counts per part (and fold) and class, subjects: the record Table 1 and the rules read."""
        parts = {}
        for name in OFFICIAL_PARTS if self.protocol == "official" else CV_PARTS:
            parts[name] = _counts(self.part(name))
        out: dict[str, Any] = {
            "layout": self.layout,
            "root": self.root,
            "protocol": self.protocol,
            "class_names": self.class_names,
            "positive_class": self.positive_class,
            "parts": parts,
            "dropped_duplicates": self.dropped_duplicates,
            "notes": self.notes,
        }
        if self.protocol == "cv":
            out["folds"] = self.folds
            pool = self.part("pool")
            out["per_fold"] = {f"fold_{k}": _counts(pool[pool["fold"] == k]) for k in range(self.folds)}
        return out


def _counts(frame: pd.DataFrame) -> dict[str, Any]:
    labelled = frame[frame["label"] != ""]
    return {
        "images": len(frame),
        "per_class": {str(k): int(v) for k, v in labelled["label"].value_counts().sort_index().items()},
        "subjects": int(frame["subject"].nunique()),
        "subject_known": bool(frame["subject_known"].all()) if len(frame) else True,
    }


def choose_classes(train: pd.DataFrame, classes: list[str] | None, where: str | Path) -> list[str]:
    """The configured classes, or the training split's; a classifier needs two with images."""
    from leukoscope.data.table import class_names

    present = class_names(train)
    chosen = list(classes) if classes else present
    missing = [c for c in chosen if c not in present]
    if missing:
        raise DataError(
            f"class {missing[0]!r} has no training images",
            path=where,
            hint=f"classes found: {', '.join(present)}",
        )
    if len(chosen) < 2:
        raise DataError(
            f"the dataset has only one class ({chosen[0] if chosen else 'none'})",
            path=where,
            hint="a classifier needs labelled images of at least two classes "
            "(check dataset.path / dataset.classes)",
        )
    return chosen


def choose_positive(class_names: list[str], positive: str | None) -> str | None:
    if len(class_names) != 2:
        return None
    chosen = positive or ("all" if "all" in class_names else class_names[1])
    if chosen not in class_names:
        raise DataError(f"dataset.positive_class {chosen!r} is not one of the classes {class_names}")
    return chosen


def check_classes(path: str | Path, classes: list[str] | None) -> list[str]:
    """Parse-time check: the dataset reads, and has at least two labelled classes outside its test splits."""
    from leukoscope.data.readers import read_dataset

    table = read_dataset(path)
    return choose_classes(_pool(table), classes, path)


def _pool(table: pd.DataFrame) -> pd.DataFrame:
    roles = table["split"].str.lower()
    return table[(table["label"] != "") & ~roles.isin(TEST_ROLES) & (roles != "final")]


def build_sample_sheet(
    path: str | Path,
    *,
    protocol: str = "official",
    folds: int = 3,
    val_fold: int | None = None,
    val_fraction: float = 0.2,
    classes: list[str] | None = None,
    positive_class: str | None = None,
    limit_per_class: int | None = None,
    seed: int = 42,
) -> SampleSheet:
    from leukoscope.data.readers import read_dataset

    table = read_dataset(path)
    layout, root = str(table.attrs.get("layout", "")), str(table.attrs.get("root", path))
    if protocol == "official":
        parts, notes, dropped = _official(table, val_fold, val_fraction, classes, limit_per_class, seed)
    elif protocol == "cv":
        parts, notes, dropped = _cv(table, folds, classes, limit_per_class, seed)
    else:
        raise DataError(f"unknown protocol {protocol!r}", hint="choose official or cv")
    train = parts["train"] if protocol == "official" else parts["pool"]
    class_names = choose_classes(train, classes, path)
    positive = choose_positive(class_names, positive_class)
    frame = _assemble(parts, class_names)
    sheet = SampleSheet(frame, class_names, positive, protocol, folds, layout, root, notes, dropped)
    if not len(sheet.part("val" if protocol == "official" else "pool")):
        raise DataError("no validation images", path=path, hint="check dataset.classes and val_fold")
    return sheet


def _official(
    table: pd.DataFrame,
    val_fold: int | None,
    val_fraction: float,
    classes: list[str] | None,
    limit: int | None,
    seed: int,
) -> tuple[dict[str, pd.DataFrame], list[str], int]:
    from leukoscope.config import DataConfig
    from leukoscope.data.splits import make_splits, official_folds

    notes: list[str] = []
    pool = _pool(table)
    pool = pool[~pool["split"].str.lower().isin(EVAL_ROLES)]
    folds = official_folds(pool) if len(pool) else []
    if val_fold is not None and not folds:
        notes.append(
            f"the data has no official folds: val_fold {val_fold} ignored, subjects held out instead"
        )
        val_fold = None
    if val_fold is not None:
        notes.append(f"validation: the data's fold_{val_fold}")
    elif not (table["split"].str.lower().isin(EVAL_ROLES - TEST_ROLES)).any():
        notes.append(f"validation: {val_fraction:.0%} of the training subjects, held out (subject-grouped)")
    labelled = table[table["label"] != ""]
    labelled.attrs.update(table.attrs)
    cfg = DataConfig(classes=classes, val_fold=val_fold, val_fraction=val_fraction, limit_per_class=limit)
    splits = make_splits(_without_final(labelled), cfg, seed)
    dropped = sum(len(df.attrs.get("dropped_duplicates", [])) for df in splits.values())
    final = table[table["split"].str.lower() == "final"]
    empty = table.iloc[0:0]
    parts = {
        "train": splits["train"],
        "val": splits["val"],
        "test": splits.get("test", empty),
        "final": final,
    }
    return parts, notes, dropped


def _without_final(table: pd.DataFrame) -> pd.DataFrame:
    out = table[table["split"].str.lower() != "final"]
    out.attrs.update(table.attrs)
    return out


def _cv(
    table: pd.DataFrame, k: int, classes: list[str] | None, limit: int | None, seed: int
) -> tuple[dict[str, pd.DataFrame], list[str], int]:
    from leukoscope.data.hashing import find_identical
    from leukoscope.data.splits import assert_disjoint, cap_per_class, drop_cross_duplicates, grouped_kfold

    pool = _pool(table)
    pool = pool[~pool["split"].str.lower().isin(EVAL_ROLES)]
    test = table[(table["label"] != "") & table["split"].str.lower().isin(TEST_ROLES)]
    if classes:
        pool, test = pool[pool["label"].isin(classes)], test[test["label"].isin(classes)]
    if limit:
        pool, test = cap_per_class(pool, limit, seed), cap_per_class(test, limit, seed)
    twins = {p for group in find_identical(pool["path"].tolist()) for p in group[1:]}
    pool = pool[~pool["path"].isin(twins)].reset_index(drop=True)
    pool.attrs.update(table.attrs)
    kept = drop_cross_duplicates({"train": pool, "test": test.reset_index(drop=True)})
    dropped = len(twins) + len(kept["test"].attrs.get("dropped_duplicates", []))
    pool, test = kept["train"], kept["test"]
    pool.attrs.update(table.attrs)
    fold = np.full(len(pool), -1, dtype=np.int64)
    for i, (_, val_idx) in enumerate(grouped_kfold(pool, k, seed)):
        fold[val_idx] = i
    pool = pool.assign(fold=fold)
    for i in range(k):
        assert_disjoint({"train": pool[pool["fold"] != i], "val": pool[pool["fold"] == i], "test": test})
    notes = [f"{k} subject-grouped folds" + (" (the data's own)" if _own_folds(pool, k) else "")]
    final = table[table["split"].str.lower() == "final"]
    return {"pool": pool, "test": test, "final": final}, notes, dropped


def _own_folds(pool: pd.DataFrame, k: int) -> bool:
    from leukoscope.data.splits import official_folds

    return len(official_folds(pool)) == k


def _assemble(parts: dict[str, pd.DataFrame], class_names: list[str]) -> pd.DataFrame:
    lookup = {c: i for i, c in enumerate(class_names)}
    frames = []
    for name, part in parts.items():
        part = part.copy()
        if name != "final":
            part = part[part["label"].isin(class_names)]
        if "fold" not in part:
            part["fold"] = -1
        if "center_crop" not in part:
            part["center_crop"] = 0
        part = part.rename(columns={"split": "dataset_split"}).reset_index(drop=True)
        part["part"] = name
        part["row"] = np.arange(len(part), dtype=np.int64)
        frames.append(part)
    frame = pd.concat(frames, ignore_index=True)
    frame["center_crop"] = frame["center_crop"].fillna(0).astype(np.int64)
    frame["fold"] = frame["fold"].astype(np.int64)
    frame["y"] = frame["label"].map(lookup).fillna(-1).astype(np.int64)
    frame["subject_known"] = frame["subject_known"].astype(bool)
    return frame[COLUMNS].reset_index(drop=True)


def read_sample_sheet(path: str | Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"sample sheet lacks columns {', '.join(missing)}", path=path)
    return frame
