"""Shared plumbing for experiments: labelled validation tables that never hold a test or training image."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from leukoscope.errors import DataError

LOG = logging.getLogger("leukoscope")


def labelled_table(
    data: str | Path, class_names: Sequence[str] | None = None, split: str | None = None
) -> pd.DataFrame:
    """The dataset's labelled rows (of `split` and `class_names` when given), with a fresh index."""
    from leukoscope.data import read_dataset

    table = read_dataset(data)
    if split is not None:
        if split not in set(table["split"]):
            known = ", ".join(sorted({s for s in table["split"] if s})) or "none"
            raise DataError(f"no split {split!r} in this data", path=data, hint=f"splits: {known}")
        table = table[table["split"] == split]
    table = table[table["label"] != ""]
    if class_names is not None:
        table = table[table["label"].isin(list(class_names))]
    if table.empty:
        hint = f"expected labels {', '.join(class_names)}" if class_names else "label the images"
        raise DataError("no labelled images of the model's classes", path=data, hint=hint)
    return table.reset_index(drop=True)


def validation_table(
    data: str | Path, class_names: Sequence[str], runs: Sequence[str | Path], split: str | None = None
) -> pd.DataFrame:
    """Labelled rows to TUNE on: never a test split, never an image the runs trained on."""
    from leukoscope.evaluate.thresholds import refuse_test_split

    table = labelled_table(data, class_names, split)
    refuse_test_split(table["split"].str.lower().unique())
    for run in runs:
        trained = training_paths(Path(run))
        shared = int(table["path"].isin(trained).sum())
        if shared:
            raise DataError(
                f"{shared} validation images were in the training split of {Path(run).name}",
                path=data,
                hint="tune on held-out images: --val-split <the run's validation fold> or a manifest",
            )
    return table


def training_paths(run_dir: Path) -> set[str]:
    """Files a run trained on, from its splits.csv (empty when the run has none)."""
    path = run_dir / "splits.csv"
    if not path.is_file():
        return set()
    splits = pd.read_csv(path, keep_default_na=False, usecols=["path", "split"])
    return set(splits.loc[splits["split"] == "train", "path"])


def labels_of(table: pd.DataFrame, class_names: Sequence[str]) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(class_names)}
    return np.array([lookup[label] for label in table["label"]], dtype=np.int64)


def drop_unreadable(table: pd.DataFrame, ok: np.ndarray, what: str) -> pd.DataFrame:
    """Unreadable images cannot be scored; say how many were left out instead of failing the whole run."""
    if ok.all():
        return table
    if not ok.any():
        raise DataError(f"no readable images in the {what} data", hint="run `leukoscope data check`")
    LOG.warning("%d unreadable %s images left out", int((~ok).sum()), what)
    return table[ok].reset_index(drop=True)
