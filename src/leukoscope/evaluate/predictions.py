"""Prediction tables (parquet) and their scores: what the workflow's predict, evaluate and ensemble write.

A prediction table has one row per image of every predicted split: `split`, `path`, `label` ("" when
unlabelled), `subject`, `subject_known`, `ok` (the image decoded) and `p_<class>` for each class in the
model's order. Scoring drops unreadable and unlabelled rows and says how many. `predict_stage`,
`average_seeds_stage` and `evaluate_stage` are those workflow rules, file to file (their scripts only map
the rule's names onto them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoscope._io import atomic_path, read_json, write_json
from leukoscope.config import opt
from leukoscope.errors import DataError

log = logging.getLogger(__name__)
KEY = ["split", "path"]


@dataclass
class EvaluateConfig:
    threshold: float = opt(0.5, "two classes: P(positive) >= threshold", minimum=0.0, maximum=1.0)
    batch_size: int = opt(64, "images per prediction batch", minimum=1)
    bootstrap: int = opt(
        1000, "subject-level bootstrap resamples for 95% intervals (0: none)", paper=False, minimum=0
    )
    bootstrap_seed: int = opt(0, "seed of the bootstrap resampling")


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
    *,
    per_subject: bool = False,
) -> dict[str, Any]:
    """Metrics of one split (`score_rows`; its per-subject breakdown only if asked) and what was left out.

    A split without labelled, readable images scores nothing: `{"n": 0, ...}` says why, since a table
    must still show the cell as empty rather than fail the whole chain. `leukoscope evaluate` scores
    its table with it too (`evaluate.run.score`).
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
    if not per_subject:
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


# --- the workflow's predict, average_seeds and evaluate stages, file to file -----------------------------

CROP_ROLES = {"val": "val", "test": "test", "final": "final"}  # crop file -> split (paper, heldout)


def predict_stage(
    model: str | Path,
    crops: Mapping[str, tuple[str | Path, str | Path]],
    out: str | Path,
    *,
    fold: int | None = None,
    batch_size: int = 64,
) -> pd.DataFrame:
    """One model's probabilities for every split it is scored or submitted on, as one table at `out`.

    `model` is a model folder or its model.keras (the rule's input, so Snakemake waits for it).
    `crops[part]` is (index parquet, images .npy) of a crop file; under cv the `pool` part holds this
    fold's validation (inner) and test (outer fold) rows. Predicts through `load_predictor`, as
    `leukoscope predict` does.
    """
    from leukoscope.data.samples import scope_rows
    from leukoscope.infer.predictor import load_predictor

    predictor = load_predictor(Path(model) if Path(model).is_dir() else Path(model).parent)
    predictor.batch_size = int(batch_size)
    card = predictor.card
    log.info("predict with %s on %s (%s)", predictor.model_id, predictor.backend, predictor.precision)
    tables = []
    for part, (index_file, images_file) in crops.items():
        index = pd.read_parquet(index_file)
        images = np.load(images_file, mmap_mode="r")
        for role in ("val", "test") if part == "pool" else (CROP_ROLES[part],):
            rows = scope_rows(index, role, fold) if part == "pool" else index
            at = rows["row"].to_numpy(np.int64)
            probs = predictor.predict_arrays(images[at]) if len(rows) else np.zeros((0, card.num_classes))
            tables.append(prediction_table(rows, probs, card.class_names, role))
            log.info("predict %s: %d images", role, len(rows))
    table = pd.concat(tables, ignore_index=True)
    with atomic_path(out) as tmp:
        table.to_parquet(tmp, index=False)
    return table


def average_seeds_stage(seed_files: Sequence[str | Path], out: str | Path, name: str = "") -> pd.DataFrame:
    """A backbone x loss's probabilities: the mean over its seeds' prediction tables, written to `out`."""
    tables = [pd.read_parquet(p) for p in seed_files]
    averaged = mean_probabilities(tables, class_names_of(tables[0]))
    with atomic_path(out) as tmp:
        averaged.to_parquet(tmp, index=False)
    log.info("%s: mean of %d seed(s), %d rows", name, len(tables), len(averaged))
    return averaged


def evaluate_stage(
    predictions: str | Path,
    seed_predictions: Mapping[Any, str | Path],
    summary: str | Path,
    outputs: Mapping[str, str | Path],
    model: str,
    *,
    threshold: float,
    bootstrap: int,
    bootstrap_seed: int,
) -> dict[str, dict[str, Any]]:
    """`score_model` of one model on each split of `outputs` ({split: JSON path}), one JSON per split.

    `seed_predictions` ({seed: table}) gives each seed's own scores beside the seed mean's; the positive
    class comes from the sample sheet's `summary`.
    """
    table = pd.read_parquet(predictions)
    positive = read_json(summary).get("positive_class")
    seeds = {seed: pd.read_parquet(path) for seed, path in seed_predictions.items()}
    written = {}
    for split, out in outputs.items():
        scores = score_model(table, seeds, split, float(threshold), positive,
                             n_boot=int(bootstrap), seed=int(bootstrap_seed))  # fmt: skip
        written[split] = scores | {"model": model}
        write_json(out, written[split])
        f1 = scores.get("weighted_f1")
        log.info(
            "%s %s: n=%d%s", model, split, scores["n"], f", weighted F1 {f1:.4f}" if f1 is not None else ""
        )
    return written
