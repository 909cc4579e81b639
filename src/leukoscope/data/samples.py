"""The workflow's sample sheet: every image once, with its role in this run's protocol, checked for leaks.

One row per image the workflow uses, with the sample-table columns (`leukoscope.data.table`) plus:

| column | meaning |
| --- | --- |
| dataset_split | the data's own split or fold (fold_0, prelim, final, ...) |
| part | the crop file the image goes to: train / val / test / final (paper, heldout), pool (cv) |
| row | its row in that file |
| fold | cv: the outer fold that scores it (-1 elsewhere) |
| inner | cv: bit k set = the image validates (early stopping, loss and ensemble choice) for outer fold k |
| y | class index in `class_names` (-1: unlabelled, the final test) |

Which split does what under each protocol (paper, heldout, cv): `data.protocols`.

Identical files are dropped from later splits, and no subject or file sits on two sides of any boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoscope.data.protocols import canonical_protocol, check_dataset_plan, cv_parts, held_out_parts
from leukoscope.errors import DataError

PARTS = {"paper": ("train", "val", "final"), "heldout": ("train", "val", "test", "final"), "cv": ("pool",)}
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
    "inner",
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

    def drop_unreadable(self, unreadable: set[str], skip: bool, report: str | Path) -> list[str]:
        """Unreadable images stop the run, listed (`report`: the data check), unless `skip`: then they
        leave the sheet and each part's rows are renumbered. The note to keep."""
        bad = self.frame["path"].isin(unreadable)
        if not bad.any():
            return []
        shown = ", ".join(Path(p).name for p in self.frame.loc[bad, "path"].head(5))
        more = f" and {int(bad.sum()) - 5} more" if bad.sum() > 5 else ""
        if not skip:
            raise DataError(
                f"{int(bad.sum())} unreadable image(s): {shown}{more}",
                path=report,
                hint="fix or remove them, or set dataset.skip_unreadable: true to leave them out",
            )
        kept = self.frame[~bad].copy()
        for _, rows in kept.groupby("part"):
            kept.loc[rows.index, "row"] = range(len(rows))
        self.frame = kept.reset_index(drop=True)
        return [f"{int(bad.sum())} unreadable image(s) left out ({shown}{more})"]

    def summary(self) -> dict[str, Any]:
        """Counts per part (and fold) and class, subjects: the record Table 1 and the rules read."""
        out: dict[str, Any] = {
            "layout": self.layout,
            "root": self.root,
            "protocol": self.protocol,
            "class_names": self.class_names,
            "positive_class": self.positive_class,
            "parts": {name: _counts(self.part(name)) for name in PARTS[self.protocol]},
            "dropped_duplicates": self.dropped_duplicates,
            "notes": self.notes,
        }
        if self.protocol == "cv":
            out["folds"] = self.folds
            pool = self.part("pool")
            out["per_fold"] = {
                f"fold_{k}": {
                    "test": _counts(scope_rows(pool, "test", k)),
                    "train": _counts(scope_rows(pool, "train", k)),
                    "val": _counts(scope_rows(pool, "val", k)),
                }
                for k in range(self.folds)
            }
        return out


def scope_rows(rows: pd.DataFrame, role: str, fold: int | None) -> pd.DataFrame:
    """The rows of a crop index or sheet that play `role` (train / val / test) in one chain.

    Outside cv (`fold` None) a chain's roles are its crop files, so every row is returned; in cv fold k's
    chain, `test` is fold k, `val` its inner validation subjects, `train` the rest of the other folds.
    """
    if fold is None:
        return rows
    outer = rows["fold"].to_numpy() == fold
    inner = (rows["inner"].to_numpy(np.int64) >> int(fold)) & 1 == 1
    keep = {"test": outer, "val": ~outer & inner, "train": ~outer & ~inner}[role]
    return rows[keep]


def _counts(frame: pd.DataFrame) -> dict[str, Any]:
    labelled = frame[frame["label"] != ""]
    return {
        "images": len(frame),
        "per_class": {str(k): int(v) for k, v in labelled["label"].value_counts().sort_index().items()},
        "subjects": int(frame["subject"].nunique()),
        "subject_known": bool(frame["subject_known"].all()) if len(frame) else True,
    }


def build_sample_sheet(
    path: str | Path,
    *,
    protocol: str = "paper",
    folds: int = 3,
    val_fold: int | None = 2,
    val_fraction: float = 0.2,
    inner_fraction: float = 0.2,
    classes: list[str] | None = None,
    positive_class: str | None = None,
    limit_per_class: int | None = None,
    seed: int = 42,
) -> SampleSheet:
    from leukoscope.data.readers import read_dataset

    table = read_dataset(path)
    protocol = canonical_protocol(protocol)
    class_names, positive = check_dataset_plan(
        table, protocol=protocol, folds=folds, val_fold=val_fold, classes=classes,
        positive_class=positive_class,
    )  # fmt: skip
    layout, root = str(table.attrs.get("layout", "")), str(table.attrs.get("root", path))
    if protocol == "cv":
        parts, notes, dropped = cv_parts(table, folds, inner_fraction, class_names, limit_per_class, seed)
        _assert_cv_disjoint(parts["pool"], folds)
    else:
        parts, notes, dropped = held_out_parts(table, protocol, val_fold, val_fraction, class_names,
                                               limit_per_class, seed)  # fmt: skip
    frame = _assemble(parts, class_names)
    sheet = SampleSheet(frame, class_names, positive, protocol, folds, layout, root, notes, dropped)
    for name in ("train", "val") if protocol != "cv" else ("pool",):
        if not len(sheet.part(name)):
            raise DataError(
                f"the {name} split is empty", path=path, hint="check dataset.classes and val_fold"
            )
    return sheet


def _assert_cv_disjoint(pool: pd.DataFrame, k: int) -> None:
    from leukoscope.data.splits import assert_disjoint

    for i in range(k):
        assert_disjoint({role: scope_rows(pool, role, i) for role in ("train", "val", "test")})


def _assemble(parts: dict[str, pd.DataFrame], class_names: list[str]) -> pd.DataFrame:
    lookup = {c: i for i, c in enumerate(class_names)}
    frames = []
    for name, part in parts.items():
        part = part.copy()
        if name != "final":
            part = part[part["label"].isin(class_names)]
        for column in ("fold", "center_crop", "inner"):
            if column not in part:
                part[column] = -1 if column == "fold" else 0
        part = part.rename(columns={"split": "dataset_split"}).reset_index(drop=True)
        part["part"] = name
        part["row"] = np.arange(len(part), dtype=np.int64)
        frames.append(part)
    frame = pd.concat(frames, ignore_index=True)
    for column in ("center_crop", "fold", "inner"):
        frame[column] = frame[column].fillna(0).astype(np.int64)
    frame["y"] = frame["label"].map(lookup).fillna(-1).astype(np.int64)
    frame["subject_known"] = frame["subject_known"].astype(bool)
    return frame[COLUMNS].reset_index(drop=True)


def read_sample_sheet(path: str | Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"sample sheet lacks columns {', '.join(missing)}",
            path=path,
            hint="it was written by an older version: delete results/samples and run again",
        )
    return frame
