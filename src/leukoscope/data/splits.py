"""Train / validation / test splits that never share a subject or an identical file.

Cells of one patient look alike (stain, size, scanner), so a split by image lets a model recognise the
patient instead of the disease and report accuracy it will not have on new patients. Splits here are
therefore grouped by subject; where no subject is known (`subject_known` False) each image is its own
subject, and reports should say that such a split cannot rule out a patient leak.

Only the training split may ever feed normalisation statistics, oversampling, class weights or decision
thresholds: anything computed from validation or test images makes their scores optimistic.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from leukoscope.config import DataConfig
from leukoscope.data.hashing import find_identical
from leukoscope.data.table import class_names
from leukoscope.errors import ConfigError, DataError

FOLD_RE = re.compile(r"^fold_\d+$")
_ROLES = {
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
    "prelim": "test",  # C-NMC's labelled preliminary test set
}
SPLIT_ORDER = ("train", "val", "test")
_SHOW = 5


def official_folds(table: pd.DataFrame) -> list[str]:
    """The dataset's own folds (C-NMC `fold_0..2`, or a CSV's `fold_N`) when every row has one, else []."""
    splits = table["split"].unique()
    if len(splits) >= 2 and all(FOLD_RE.match(s) for s in splits):
        return sorted(splits, key=lambda s: int(s.split("_")[1]))
    return []


def grouped_kfold(table: pd.DataFrame, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, val) positional index pairs; a subject's images always fall in the same fold.

    The dataset's official folds are used when it has exactly `k` of them (C-NMC: k=3), so results
    compare with published ones; otherwise scikit-learn's StratifiedGroupKFold, seeded.
    """
    folds = official_folds(table)
    if folds and len(folds) == k:
        split = table["split"].to_numpy()
        return [(np.flatnonzero(split != f), np.flatnonzero(split == f)) for f in folds]
    _require_labels(table)
    if k < 2:
        raise ConfigError(f"k-fold needs k >= 2, got {k}")
    n_groups = table["subject"].nunique()
    if n_groups < k:
        raise DataError(
            f"{k}-fold split needs at least {k} subjects, the data has {n_groups}",
            path=table.attrs.get("root"),
            hint="use fewer folds or add subjects",
        )
    return list(_sgkf(k, seed).split(np.zeros(len(table)), table["label"], groups=table["subject"]))


def grouped_holdout(table: pd.DataFrame, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) positional indices holding out about `fraction` of the subjects, stratified by class.

    One fold of a StratifiedGroupKFold with round(1 / fraction) folds: the first fold whose validation
    part has every class, so a small dataset still validates on all of them.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"val_fraction must be between 0 and 1, got {fraction}")
    _require_labels(table)
    n_groups = table["subject"].nunique()
    if n_groups < 2:
        raise DataError(
            "cannot hold out validation subjects: the data has only one subject",
            path=table.attrs.get("root"),
            hint="pass a validation set (data.val) or add subjects",
        )
    smallest = int(table["label"].value_counts().min())  # stratifying needs k <= every class's size
    k = max(2, min(n_groups, round(1.0 / fraction), smallest))
    if smallest < 2:
        raise DataError(
            f"cannot hold out validation subjects: class {table['label'].value_counts().idxmin()!r} has "
            "only one image here",
            path=table.attrs.get("root"),
            hint="add images of that class (or use fewer cv folds)",
        )
    folds = list(_sgkf(k, seed).split(np.zeros(len(table)), table["label"], groups=table["subject"]))
    n_classes = table["label"].nunique()
    for train_idx, val_idx in folds:
        if table["label"].iloc[val_idx].nunique() == n_classes:
            return train_idx, val_idx
    return folds[0]


def _sgkf(k: int, seed: int) -> StratifiedGroupKFold:
    return StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed % (2**32))


def _require_labels(table: pd.DataFrame) -> None:
    if table.empty or (table["label"] == "").any():
        raise DataError(
            "cannot split: some images have no label",
            path=table.attrs.get("root"),
            hint="split labelled rows",
        )


def make_splits(table: pd.DataFrame, data_cfg: DataConfig, seed: int = 42) -> dict[str, pd.DataFrame]:
    """`train`, `val` (and `test` when the data has one), grouped by subject and checked for leaks.

    - C-NMC: test = the labelled prelim set; val = official fold `data_cfg.val_fold`, or a subject-grouped
      hold-out of `val_fraction` of the training folds when val_fold is None.
    - A CSV with a `split` column: rows marked val / test are used as such.
    - `data_cfg.val` / `data_cfg.test`: another dataset is read for that split.
    - `classes` restricts and orders classes (stored in each split's `attrs["classes"]`);
      `limit_per_class` caps each split per class (seeded, deterministic).
    Files in val/test identical to a training file (real C-NMC has 94 such pairs across folds) are dropped
    and listed in `attrs["dropped_duplicates"]`; then `assert_disjoint` guarantees no leak is left.
    Only `train` may feed normalisation stats, oversampling or thresholds.
    """
    labelled = _restrict(table, data_cfg.classes)
    roles = labelled["split"].str.lower().map(lambda s: _ROLES.get(s, "pool"))
    pool = labelled[roles == "pool"].reset_index(drop=True)
    pool.attrs.update(table.attrs)
    test = _other(data_cfg.test, data_cfg.classes) if data_cfg.test else labelled[roles == "test"]
    own_val = labelled[roles == "val"]
    if data_cfg.val:
        train, val = pool, _other(data_cfg.val, data_cfg.classes)
    elif not own_val.empty:
        train, val = pool, own_val
    elif data_cfg.val_fold is not None:
        train, val = _fold_split(pool, data_cfg.val_fold)
    else:
        train_idx, val_idx = grouped_holdout(pool, data_cfg.val_fraction, seed)
        train, val = pool.iloc[train_idx], pool.iloc[val_idx]
    splits = {"train": train, "val": val} | ({"test": test} if not test.empty else {})
    if data_cfg.limit_per_class:
        splits = {k: cap_per_class(v, data_cfg.limit_per_class, seed) for k, v in splits.items()}
    splits = drop_cross_duplicates(splits)
    _require_nonempty(splits, table)
    assert_disjoint(splits)
    classes = list(data_cfg.classes) if data_cfg.classes else class_names(splits["train"])
    for df in splits.values():
        df.attrs["classes"] = classes
        df.attrs["subject_known"] = subjects_known(df)
    return splits


def _restrict(table: pd.DataFrame, classes: list[str] | None) -> pd.DataFrame:
    labelled = table[table["label"] != ""]
    if labelled.empty:
        raise DataError("the dataset has no labelled images", path=table.attrs.get("root"))
    if not classes:
        return labelled
    found = class_names(labelled)
    missing = [c for c in classes if c not in found]
    if missing:
        raise DataError(
            f"class(es) {', '.join(missing)} not in the data",
            path=table.attrs.get("root"),
            hint=f"classes found: {', '.join(found)}",
        )
    return labelled[labelled["label"].isin(classes)]


def _other(path: str, classes: list[str] | None) -> pd.DataFrame:
    from leukoscope.data.readers import read_dataset

    return _restrict(read_dataset(path), classes)


def _fold_split(pool: pd.DataFrame, val_fold: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    folds = official_folds(pool)
    name = f"fold_{val_fold}"
    if name not in folds:
        raise ConfigError(
            f"val_fold {val_fold} is not one of the dataset's folds ({', '.join(folds) or 'none'})",
            hint="choose an existing fold, or leave val_fold empty for a grouped hold-out",
        )
    is_val = pool["split"] == name
    return pool[~is_val], pool[is_val]


def cap_per_class(df: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """At most `limit` rows per class, the same ones for the same seed, in the table's order."""
    picked = df.sample(frac=1.0, random_state=seed % (2**32)).groupby("label", sort=False).head(limit)
    return df.loc[df.index.isin(picked.index)]


def _require_nonempty(splits: dict[str, pd.DataFrame], table: pd.DataFrame) -> None:
    for name in ("train", "val"):
        if splits[name].empty:
            raise DataError(
                f"the {name} split is empty",
                path=table.attrs.get("root"),
                hint="check data.classes, data.val_fold and data.limit_per_class",
            )


def subjects_known(df: pd.DataFrame) -> bool:
    """False when some images are their own subject: then a patient leak cannot be ruled out."""
    return bool(df["subject_known"].all()) if len(df) else True


def _ordered(splits: dict[str, pd.DataFrame]) -> list[str]:
    return [n for n in SPLIT_ORDER if n in splits] + [n for n in splits if n not in SPLIT_ORDER]


def _content_ids(paths: list[str]) -> dict[str, str]:
    """path -> a representative path of its content: identical files (or one path twice) share an id."""
    ids = {p: p for p in paths}
    for group in find_identical(paths):
        for p in group:
            ids[p] = group[0]
    return ids


def drop_cross_duplicates(splits: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Drop from each split (in train, val, test order) files identical to one in an earlier split.

    What was dropped is in the split's `attrs["dropped_duplicates"]` ({path, same_as, split}).
    """
    ids = _content_ids([p for df in splits.values() for p in df["path"]])
    seen: dict[str, tuple[str, str]] = {}
    out: dict[str, pd.DataFrame] = {}
    for name in _ordered(splits):
        df = splits[name]
        content = df["path"].map(ids)
        leaked = content.isin(list(seen)).to_numpy()
        kept = df[~leaked].reset_index(drop=True)
        kept.attrs["dropped_duplicates"] = [
            {"path": p, "same_as": seen[c][1], "split": seen[c][0]}
            for p, c in zip(df["path"][leaked], content[leaked], strict=True)
        ]
        for p, c in zip(kept["path"], content[~leaked], strict=True):
            seen.setdefault(c, (name, p))
        out[name] = kept
    return out


def find_leaks(splits: dict[str, pd.DataFrame]) -> tuple[dict[str, list[str]], list[list[tuple[str, str]]]]:
    """({subject: [splits]}, [[(split, path), ...] identical files]) for everything in two or more splits.

    Subjects count only where known; identical content is found by hashing (see `leukoscope.data.hashing`).
    """
    by_subject: dict[str, set[str]] = defaultdict(set)
    for name, df in splits.items():
        for s in df.loc[df["subject_known"], "subject"]:
            by_subject[s].add(name)
    subjects = {s: sorted(v) for s, v in sorted(by_subject.items()) if len(v) > 1}
    members: dict[str, list[tuple[str, str]]] = defaultdict(list)
    ids = _content_ids([p for df in splits.values() for p in df["path"]])
    for name, df in splits.items():
        for p in df["path"]:
            members[ids[p]].append((name, p))
    files = [sorted(m) for m in members.values() if len({n for n, _ in m}) > 1]
    return subjects, sorted(files)


def assert_disjoint(splits: dict[str, pd.DataFrame]) -> None:
    """Raise DataError naming every subject and identical file that is in more than one split."""
    subjects, files = find_leaks(splits)
    if not subjects and not files:
        return
    parts = []
    if subjects:
        shown = [f"{s} ({', '.join(v)})" for s, v in list(subjects.items())[:_SHOW]]
        parts.append(f"{len(subjects)} subject(s) in two splits: " + ", ".join(shown) + _more(subjects))
    if files:
        shown = [" = ".join(f"{n}:{_short(p)}" for n, p in group) for group in files[:_SHOW]]
        parts.append(f"{len(files)} identical file(s) across splits: " + "; ".join(shown) + _more(files))
    raise DataError(
        "splits leak: " + "; ".join(parts),
        hint="split by subject and remove duplicate files (`leukoscope data check` lists them)",
    )


def _more(items: dict | list) -> str:
    return f" and {len(items) - _SHOW} more" if len(items) > _SHOW else ""


def _short(path: str) -> str:
    """The last three path parts: enough to find the file, short enough for one line."""
    return "/".join(Path(path).parts[-3:])
