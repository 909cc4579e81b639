"""Prediction tables (parquet) and their scores: what the workflow's predict, evaluate and ensemble write.

A prediction table has one row per image of every predicted split: `split`, `path`, `label` ("" when
unlabelled), `subject`, `subject_known`, `ok` (the image decoded) and `p_<class>` for each class in the
model's order. Scoring drops unreadable and unlabelled rows and says how many.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from leukoscope.errors import DataError

KEY = ["split", "path"]


def prob_columns(class_names: Sequence[str]) -> list[str]:
    return [f"p_{c}" for c in class_names]


def prediction_table(
    rows: pd.DataFrame, probs: np.ndarray, class_names: Sequence[str], split: str
) -> pd.DataFrame:
    """Rows of one cropped split (its index table) with their probabilities; unreadable rows get NaN."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(rows), len(class_names)):
        raise ValueError(f"{probs.shape} probabilities for {len(rows)} rows x {len(class_names)} classes")
    ok = rows["ok"].to_numpy(bool)
    probs = np.where(ok[:, None], probs, np.nan)
    out = pd.DataFrame(
        {
            "split": split,
            "path": rows["path"].astype(str).to_numpy(),
            "label": rows["label"].fillna("").astype(str).to_numpy(),
            "subject": rows["subject"].astype(str).to_numpy(),
            "subject_known": rows["subject_known"].astype(bool).to_numpy(),
            "ok": ok,
        }
    )
    for column, values in zip(prob_columns(class_names), probs.T, strict=True):
        out[column] = values
    return out


def class_names_of(table: pd.DataFrame) -> list[str]:
    return [c.removeprefix("p_") for c in table.columns if c.startswith("p_")]


def score_split(
    table: pd.DataFrame,
    split: str,
    class_names: Sequence[str],
    threshold: float = 0.5,
    positive_class: str | None = None,
) -> dict[str, Any]:
    """Metrics of one split (`compute_metrics`, with subject-level numbers where subjects are known).

    A split without labelled, readable images scores nothing: `{"n": 0, ...}` says why, since a table
    must still show the cell as empty rather than fail the whole chain.
    """
    from leukoscope.evaluate.metrics import compute_metrics

    part = table[table["split"] == split]
    usable = part[part["ok"].astype(bool) & part["label"].isin(list(class_names))]
    base = {
        "split": split,
        "images": len(part),
        "unreadable": int((~part["ok"].astype(bool)).sum()),
        "unlabelled": int((part["label"] == "").sum()),
    }
    if usable.empty:
        return base | {"n": 0, "note": f"no labelled readable images in {split}: not scored"}
    probs = usable[prob_columns(class_names)].to_numpy(np.float64)
    known = bool(usable["subject_known"].all())
    subjects = usable["subject"].to_numpy(str) if known else None
    metrics = compute_metrics(
        usable["label"].to_numpy(str), probs, class_names, threshold, subjects, positive_class
    )
    metrics.pop("per_subject", None)
    metrics["subject_known"] = known
    if positive_class is not None:
        pos = metrics["per_class"][positive_class]
        metrics["positive"] = {"class": positive_class, **{k: pos[k] for k in ("precision", "recall", "f1")}}
    return base | metrics


def mean_probabilities(tables: Sequence[pd.DataFrame], class_names: Sequence[str]) -> pd.DataFrame:
    """The members' average (the paper's ensemble); rows must match (split, path) one to one."""
    if not tables:
        raise DataError("an ensemble needs at least one member's predictions")
    first = tables[0]
    columns = prob_columns(class_names)
    stacked = []
    for table in tables:
        if len(table) != len(first) or not (table[KEY].to_numpy() == first[KEY].to_numpy()).all():
            raise DataError("ensemble members predicted different images", hint="rerun their predict jobs")
        stacked.append(table[columns].to_numpy(np.float64))
    out = first.drop(columns=[c for c in first.columns if c.startswith("p_")]).copy()
    out["ok"] = np.logical_and.reduce([t["ok"].to_numpy(bool) for t in tables])
    mean = np.mean(stacked, axis=0)
    for column, values in zip(columns, mean.T, strict=True):
        out[column] = values
    return out
