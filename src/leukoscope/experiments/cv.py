"""Subject-grouped, stratified K-fold cross-validation: one full training run per fold.

Each fold trains with `train.fit` in `OUT/fold_k/` on CSV manifests of its own (`manifests/train.csv`,
`manifests/val.csv`), so the run directory records exactly which images it saw. The fold's held-out
images are its validation set (best-epoch selection included); its predictions on them are the
out-of-fold (OOF) predictions. Folds come from `data.splits.grouped_kfold`: C-NMC's three official folds
when K == 3, otherwise StratifiedGroupKFold by subject. Test splits (C-NMC prelim/final) never enter.

Resumable: a fold whose `cv_fold.json` exists is read back, not redone; a fold interrupted mid-training
continues from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoscope._io import atomic_path, write_json
from leukoscope.config import RunConfig
from leukoscope.errors import ConfigError, DataError
from leukoscope.experiments._runs import claim_out, ensure_trained, is_trained, signature

LOG = logging.getLogger("leukoscope")
FOLD_DONE = "cv_fold.json"
SUMMARY_NAME = "summary.json"
OOF_NAME = "oof_predictions.csv"
TEST_ROLES = {"test", "testing", "prelim", "final"}
SUMMARY_KEYS = ("weighted_f1", "macro_f1", "accuracy", "balanced_accuracy", "roc_auc")
Progress = Callable[[str], None]


# --- folds ---------------------------------------------------------------------------------------------


def cv_pool(cfg: RunConfig) -> pd.DataFrame:
    """Labelled, non-test images of the configured classes (capped per class when asked)."""
    from leukoscope.data import read_dataset
    from leukoscope.data.splits import cap_per_class

    if not cfg.data.data:
        raise ConfigError("no dataset given", hint="pass --data FOLDER or a CSV manifest")
    table = read_dataset(cfg.data.data)
    pool = table[(table["label"] != "") & ~table["split"].str.lower().isin(TEST_ROLES)]
    if cfg.data.classes:
        missing = sorted(set(cfg.data.classes) - set(pool["label"]))
        if missing:
            raise DataError(f"class(es) {', '.join(missing)} not in the data", path=cfg.data.data)
        pool = pool[pool["label"].isin(cfg.data.classes)]
    if cfg.data.limit_per_class:
        pool = cap_per_class(pool, cfg.data.limit_per_class, cfg.train.seed)
    if pool["label"].nunique() < 2:
        raise DataError("cross-validation needs labelled images of at least two classes", path=cfg.data.data)
    pool = pool.reset_index(drop=True)
    pool.attrs.update(table.attrs)
    return pool


def make_folds(pool: pd.DataFrame, k: int, seed: int) -> pd.Series:
    """The fold (0..k-1) whose validation set holds each image; checked for subject leaks."""
    from leukoscope.data.splits import grouped_kfold

    fold = np.full(len(pool), -1)
    for i, (_, val_idx) in enumerate(grouped_kfold(pool, k, seed)):
        fold[val_idx] = i
    if (fold < 0).any():
        raise DataError(f"{int((fold < 0).sum())} images fell in no fold")
    folds = pd.Series(fold, index=pool.index, name="fold")
    check_folds(pool, folds)
    return folds


def check_folds(pool: pd.DataFrame, folds: pd.Series) -> None:
    """Every subject in exactly one fold's validation set, hence never on both sides of any fold.

    Identical files under different subjects are not an error here: each fold's `fit` drops validation
    files identical to a training file (`make_splits`), and the OOF predictions keep only what it validated.
    """
    per_subject = folds.groupby(pool["subject"]).nunique()
    leaked = per_subject[per_subject > 1]
    if not leaked.empty:
        raise DataError(f"subject {leaked.index[0]!r} is in the validation set of two folds")


def write_manifest(df: pd.DataFrame, path: Path, split: str) -> Path:
    """path,label,subject,split; unknown subjects stay empty so the reader keeps `subject_known` False."""
    out = pd.DataFrame(
        {
            "path": df["path"],
            "label": df["label"],
            "subject": np.where(df["subject_known"], df["subject"], ""),
            "split": split,
        }
    )
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False)
    return path


def fold_config(cfg: RunConfig, fold_dir: Path) -> RunConfig:
    """The run config of one fold: its manifests as train/val, no further capping or fold choice."""
    data = dataclasses.replace(
        cfg.data,
        data=str(fold_dir / "manifests" / "train.csv"),
        val=str(fold_dir / "manifests" / "val.csv"),
        test=None,
        val_fold=None,
        limit_per_class=None,
    )
    return dataclasses.replace(cfg, data=data, out=str(fold_dir))


# --- one fold ------------------------------------------------------------------------------------------


def predict_run(
    run_dir: Path, table: pd.DataFrame, tta: str = "none", cache_dir: str | None = None
) -> tuple[np.ndarray, pd.DataFrame, Any]:
    """(probs, readable rows, card) of a trained run on a table, through the engine and the cache."""
    from leukoscope.experiments._data import cached_images, drop_unreadable, predict_batched
    from leukoscope.infer.engine import InferenceEngine
    from leukoscope.models.card import load_model

    model, card = load_model(run_dir)
    engine = InferenceEngine(model, card)
    images, ok = cached_images(table, card.preprocess, cache_dir)
    probs = predict_batched(engine.predict_arrays, images, tta)[ok]
    return probs, drop_unreadable(table, ok, "validation"), card


def fold_metrics(probs: np.ndarray, rows: pd.DataFrame, card: Any) -> dict[str, Any]:
    from leukoscope.evaluate.calibration import calibration_summary
    from leukoscope.evaluate.metrics import compute_metrics, label_indices

    subjects = rows["subject"].to_numpy(str) if rows["subject_known"].all() else None
    m = compute_metrics(
        rows["label"].to_numpy(str), probs, card.class_names, card.threshold, subjects, card.positive_class
    )
    y = label_indices(rows["label"].to_numpy(str), card.class_names)
    m["calibration"] = calibration_summary(y, probs, card.positive_index)
    return m


def oof_frame(rows: pd.DataFrame, probs: np.ndarray, card: Any, fold: int) -> pd.DataFrame:
    from leukoscope.infer.engine import predicted_labels

    frame = pd.DataFrame(
        {"path": rows["path"], "subject": rows["subject"], "subject_known": rows["subject_known"]}
    )
    frame["fold"] = fold
    frame["label"] = rows["label"].to_numpy()
    for i, name in enumerate(card.class_names):
        frame[f"p_{name}"] = probs[:, i]
    frame["pred"] = predicted_labels(probs, card)
    return frame


def validated_paths(run_dir: Path) -> set[str]:
    """The files the run really validated on (fit drops validation copies of training files)."""
    splits = pd.read_csv(run_dir / "splits.csv", keep_default_na=False)
    return set(splits.loc[splits["split"] == "val", "path"])


def run_fold(
    cfg: RunConfig, fold: int, fold_dir: Path, train: pd.DataFrame, val: pd.DataFrame, tta: str
) -> dict[str, Any]:
    """Train (or resume) and score one fold; returns its metrics (also written to `cv_fold.json`)."""
    done = fold_dir / FOLD_DONE
    if done.is_file():
        previous = json.loads(done.read_text(encoding="utf-8"))
        if previous.get("tta") == tta:
            return previous
    if not is_trained(fold_dir):
        write_manifest(train, fold_dir / "manifests" / "train.csv", "cv_train")
        write_manifest(val, fold_dir / "manifests" / "val.csv", "cv_val")
        ensure_trained(fold_config(cfg, fold_dir), fold_dir)
    validated = validated_paths(fold_dir)
    kept = val[val["path"].isin(validated)]
    probs, rows, card = predict_run(fold_dir, kept, tta, cfg.data.cache_dir)
    metrics = fold_metrics(probs, rows, card) | {"fold": fold, "run_dir": str(fold_dir), "tta": tta}
    metrics["dropped_duplicates"] = len(val) - len(kept)
    with atomic_path(fold_dir / OOF_NAME) as tmp:
        oof_frame(rows, probs, card, fold).to_csv(tmp, index=False)
    write_json(done, metrics)
    return metrics


# --- all folds -----------------------------------------------------------------------------------------


def fold_row(m: dict[str, Any]) -> dict[str, Any]:
    """The per-fold numbers a table shows (per-class F1 flattened to f1_<class>)."""
    row: dict[str, Any] = {"fold": m["fold"], "n": m["n"]}
    row |= {k: m.get(k) for k in SUMMARY_KEYS}
    row |= {f"f1_{c}": v["f1"] for c, v in m["per_class"].items()}
    row["ece"] = m.get("calibration", {}).get("ece")
    return row


def mean_std(rows: Sequence[dict[str, Any]]) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Mean and sample std (ddof=1; 0 for one fold) over folds, ignoring undefined values (None)."""
    keys = [k for k in rows[0] if k not in ("fold", "n")]
    mean: dict[str, float | None] = {}
    std: dict[str, float | None] = {}
    for key in keys:
        values = np.array([r[key] for r in rows if r.get(key) is not None], dtype=float)
        mean[key] = float(values.mean()) if values.size else None
        std[key] = float(values.std(ddof=1)) if values.size > 1 else (0.0 if values.size else None)
    return mean, std


def run_cv(
    cfg: RunConfig,
    k: int,
    out: str | Path,
    *,
    tta: str = "none",
    bootstrap: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train and score K folds, then write OOF predictions, summary.json and report.html into `out`."""
    from leukoscope.infer.tta import check_mode

    check_mode(tta)
    start = time.perf_counter()
    out = Path(out)
    pool = cv_pool(cfg)
    folds = make_folds(pool, k, cfg.train.seed)
    claim_out(out, signature([list(pool["path"]), folds.tolist(), cfg.to_dict() | {"out": ""}]), "cv.json")
    with atomic_path(out / "folds.csv") as tmp:
        pool.assign(fold=folds)[["path", "label", "subject", "subject_known", "split", "fold"]].to_csv(
            tmp, index=False
        )
    results = []
    for f in range(k):
        if progress:
            n_val = int((folds == f).sum())
            progress(f"fold {f + 1}/{k}: {len(pool) - n_val} train, {n_val} validation images")
        results.append(run_fold(cfg, f, out / f"fold_{f}", pool[folds != f], pool[folds == f], tta))
    oof = pd.concat([pd.read_csv(out / f"fold_{f}" / OOF_NAME, keep_default_na=False) for f in range(k)])
    summary = summarise(results, oof, pool, k, tta, bootstrap, cfg.train.seed)
    summary["wall_time_s"] = round(time.perf_counter() - start, 1)
    return write_outputs(out, summary, oof, results)


def summarise(
    results: list[dict[str, Any]],
    oof: pd.DataFrame,
    pool: pd.DataFrame,
    k: int,
    tta: str,
    bootstrap: int,
    seed: int,
) -> dict[str, Any]:
    from leukoscope.data.splits import official_folds

    rows = [fold_row(m) for m in results]
    mean, std = mean_std(rows)
    subject_known = bool(pool["subject_known"].all())
    summary: dict[str, Any] = {
        "k": k,
        "official_folds": len(official_folds(pool)) == k,
        "n_images": len(pool),
        "n_predicted": len(oof),  # less than n_images when validation copies of training files were dropped
        "n_subjects": int(pool["subject"].nunique()),
        "subject_known": subject_known,
        "class_names": results[0]["class_names"],
        "tta": tta,
        "mean": mean,
        "std": std,
        "folds": rows,
        "pooled": pooled_metrics(oof, results[0], bootstrap, seed),
    }
    return summary


def pooled_metrics(oof: pd.DataFrame, first: dict[str, Any], bootstrap: int, seed: int) -> dict[str, Any]:
    """Metrics of all out-of-fold predictions together (+ calibration, + subject-level bootstrap CIs)."""
    from leukoscope.evaluate.bootstrap import bootstrap_ci
    from leukoscope.evaluate.calibration import calibration_summary
    from leukoscope.evaluate.metrics import compute_metrics, label_indices

    names, positive = first["class_names"], first["positive_class"]
    threshold = first["threshold"] or 0.5
    probs = oof[[f"p_{c}" for c in names]].to_numpy(float)
    labels = oof["label"].astype(str).to_numpy()
    known = bool(oof["subject_known"].astype(str).str.lower().eq("true").all())
    subjects = oof["subject"].astype(str).to_numpy() if known else None
    m = compute_metrics(labels, probs, names, threshold, subjects, positive)
    m.pop("per_subject", None)
    y = label_indices(labels, names)
    pos = names.index(positive) if positive else 1
    m["calibration"] = calibration_summary(y, probs, pos)
    if bootstrap:
        m["bootstrap"] = bootstrap_ci(
            y, probs, subjects, n_boot=bootstrap, seed=seed, threshold=threshold, positive_index=pos
        )
    return m


def write_outputs(
    out: Path, summary: dict[str, Any], oof: pd.DataFrame, results: list[dict[str, Any]]
) -> dict[str, Any]:
    cols = ["path", "subject", "fold", "label", *[c for c in oof.columns if c.startswith("p_")], "pred"]
    with atomic_path(out / OOF_NAME) as tmp:
        oof[cols].to_csv(tmp, index=False)
    summary["predictions"] = str(out / OOF_NAME)
    summary["report"] = str(out / "report.html")
    write_json(out / SUMMARY_NAME, summary)
    from leukoscope.experiments.reporting import write_cv_report

    write_cv_report(out, summary, oof)
    return summary
