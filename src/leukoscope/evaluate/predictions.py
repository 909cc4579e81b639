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
    """Metrics of one split (`score_rows`, without the per-subject breakdown) and what was left out.

    A split without labelled, readable images scores nothing: `{"n": 0, ...}` says why, since a table
    must still show the cell as empty rather than fail the whole chain.
    """
    part = table[table["split"] == split]
    usable = usable_rows(part, class_names)
    base = {
        "split": split,
        "images": len(part),
        "unreadable": int((~part["ok"].astype(bool)).sum()),
        "unlabelled": int((part["label"] == "").sum()),
    }
    if usable.empty:
        return base | {"n": 0, "note": f"no labelled readable images in {split}: not scored"}
    metrics = score_rows(usable, class_names, threshold, positive_class)
    metrics.pop("per_subject", None)
    if positive_class is not None:
        pos = metrics["per_class"][positive_class]
        metrics["positive"] = {"class": positive_class, **{k: pos[k] for k in ("precision", "recall", "f1")}}
    return base | metrics


def usable_rows(table: pd.DataFrame, class_names: Sequence[str]) -> pd.DataFrame:
    """The rows that can be scored: readable and labelled with one of the classes."""
    return table[table["ok"].astype(bool) & table["label"].isin(list(class_names))]


def score_rows(
    rows: pd.DataFrame,
    class_names: Sequence[str],
    threshold: float = 0.5,
    positive_class: str | None = None,
) -> dict[str, Any]:
    """`compute_metrics` of usable rows (`usable_rows`), with subject-level numbers (`per_subject`,
    subject accuracies) when every row's subject is known; `subject_known` says whether they were.

    The one scoring path: the workflow's evaluate rule (through `score_split`) and `leukoscope evaluate`
    (`evaluate.run`) both score a prediction table with it.
    """
    from leukoscope.evaluate.metrics import compute_metrics

    probs = rows[prob_columns(class_names)].to_numpy(np.float64)
    known = bool(rows["subject_known"].astype(bool).all())
    subjects = rows["subject"].to_numpy(str) if known else None
    metrics = compute_metrics(
        rows["label"].to_numpy(str), probs, class_names, threshold, subjects, positive_class
    )
    metrics["subject_known"] = known
    return metrics


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


def scored_rows(table: pd.DataFrame, split: str, class_names: Sequence[str]) -> pd.DataFrame:
    """The rows of `split` that are scored: readable and labelled with one of the classes."""
    return usable_rows(table[table["split"] == split], class_names)


def resampler_for(rows: pd.DataFrame, class_names: Sequence[str], n_boot: int, seed: int) -> Any:
    """The subject-level resampler of scored rows (each image its own subject where subjects are unknown)."""
    from leukoscope.evaluate.intervals import SubjectResampler
    from leukoscope.evaluate.metrics import label_indices

    known = bool(rows["subject_known"].all())
    y = label_indices(rows["label"].to_numpy(str), list(class_names))
    return SubjectResampler(y, rows["subject"].to_numpy(str) if known else None, n_boot=n_boot, seed=seed)


def decisions(rows: pd.DataFrame, class_names: Sequence[str], threshold: float, positive: str | None) -> Any:
    from leukoscope.evaluate.metrics import predict_indices

    return predict_indices(rows[prob_columns(class_names)].to_numpy(np.float64), list(class_names),
                           threshold, positive)  # fmt: skip


def score_with_intervals(
    table: pd.DataFrame,
    split: str,
    class_names: Sequence[str],
    threshold: float = 0.5,
    positive_class: str | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """`score_split` + `ci`: subject-level bootstrap 95% intervals (stratified by class) of weighted F1,
    accuracy and the positive class's precision, recall and F1."""
    from leukoscope.evaluate.intervals import bootstrap_intervals

    scores = score_split(table, split, class_names, threshold, positive_class)
    rows = scored_rows(table, split, class_names)
    if not scores.get("n") or n_boot < 1:
        return scores
    positive = list(class_names).index(positive_class) if positive_class else None
    resampler = resampler_for(rows, class_names, n_boot, seed)
    pred = decisions(rows, class_names, threshold, positive_class)
    scores["ci"] = bootstrap_intervals(resampler, pred, len(class_names), positive)
    scores["bootstrap"] = {
        "resamples": n_boot,
        "seed": seed,
        "unit": "subject" if bool(rows["subject_known"].all()) else "image",
        "stratified_by": "class",
        "n_units": resampler.n_subjects,
    }
    return scores


def paired_differences(
    tables: dict[str, pd.DataFrame],
    reference: str,
    split: str,
    class_names: Sequence[str],
    threshold: float = 0.5,
    positive_class: str | None = None,
    *,
    metric: str = "weighted_f1",
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """{model: metric(model) - metric(reference)} on the same images of `split`, paired resamples."""
    from leukoscope.evaluate.intervals import paired_difference

    ref = scored_rows(tables[reference], split, class_names)
    if ref.empty or n_boot < 1:
        return {}
    positive = list(class_names).index(positive_class) if positive_class else None
    resampler = resampler_for(ref, class_names, n_boot, seed)
    ref_pred = decisions(ref, class_names, threshold, positive_class)
    out = {}
    for name, table in tables.items():
        rows = scored_rows(table, split, class_names)
        if (
            name == reference
            or len(rows) != len(ref)
            or not (rows["path"].to_numpy() == ref["path"].to_numpy()).all()
        ):
            continue
        pred = decisions(rows, class_names, threshold, positive_class)
        out[name] = paired_difference(resampler, pred, ref_pred, len(class_names), positive, metric)
    return out


PER_SEED = ("weighted_f1", "accuracy", "roc_auc")


def score_model(
    table: pd.DataFrame,
    seed_tables: dict[str, pd.DataFrame],
    split: str,
    threshold: float,
    positive_class: str | None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The workflow's scores of one model on one split: those of its seed-averaged probabilities, with
    intervals (`score_with_intervals`), and each seed's own (`per_seed`) for the mean and std over seeds."""
    classes = class_names_of(table)
    scores = score_with_intervals(table, split, classes, threshold, positive_class, n_boot=n_boot, seed=seed)
    if seed_tables:
        scores["per_seed"] = {}
        for name, seed_table in seed_tables.items():
            own = score_split(seed_table, split, classes, threshold, positive_class)
            scores["per_seed"][str(name)] = {k: own.get(k) for k in PER_SEED} | {
                "positive_f1": own.get("positive", {}).get("f1")
            }
    return scores
