"""Evaluate a trained model on a labelled split: metrics.json, confusion matrix, ROC, per-image predictions.

The images go through the same cache and card preprocessing as training and the same `InferenceEngine`
as `predict` and `serve`, so the numbers here are the numbers a deployed model gets. A split that shares
subjects or files with the run's training split is flagged in the output, never silently scored.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoscope._io import atomic_path, write_json
from leukoscope.errors import ConfigError, DataError

log = logging.getLogger(__name__)
RUN_SPLITS = ("train", "val", "test")  # this run's own assignment, from its splits.csv


def evaluate_model(
    model_dir: str | Path,
    data: str | None,
    split: str | None = None,
    out: str | Path | None = None,
    *,
    cache_dir: str | None = None,
    precision: str = "auto",
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, Any]:
    """Score the model in `model_dir` on `split` of `data` (or of its own splits.csv); returns metrics.

    `split`: one of the dataset's own splits (C-NMC `prelim`, `fold_0`...), the run's `val` / `train` /
    `test` (from splits.csv; `data` may then be None), or `all` (every labelled image; the default).
    Outputs go to `out` (default `model_dir/eval-<split>/`).
    """
    from leukoscope.models.card import load_model

    model_dir = Path(model_dir)
    model, card = load_model(model_dir)
    name = split or "all"
    rows = select_rows(model_dir, data, name)
    rows = labelled_rows(rows, card.class_names, name)
    images, rows = cached_images(rows, card.preprocess, cache_dir, progress)
    probs = predict(model, card, images, precision, batch_size)
    metrics = score(rows, probs, card)
    metrics |= {
        "split": name,
        "data": str(data) if data else None,
        "model_dir": str(model_dir),
        "model_id": card.model_id,
        "training_overlap": training_overlap(model_dir, rows),
    }
    out_dir = Path(out) if out is not None else model_dir / f"eval-{name}"
    write_outputs(out_dir, metrics, rows, probs, card)
    metrics["out"] = str(out_dir)
    return metrics


def read_run_splits(model_dir: Path) -> pd.DataFrame | None:
    path = model_dir / "splits.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path, dtype={"label": str, "subject": str}, keep_default_na=False)
    frame["subject_known"] = frame["subject_known"].astype(str).str.lower().isin(("true", "1"))
    return frame


def select_rows(model_dir: Path, data: str | None, split: str) -> pd.DataFrame:
    """The sample-table rows of `split`: the dataset's own split first, then the run's assignment."""
    run_splits = read_run_splits(model_dir)
    table = None
    if data:
        from leukoscope.data.readers import read_dataset

        table = read_dataset(data)
        if split == "all":
            return table
        if split in set(table["split"]):
            return table[table["split"] == split]
    if split in RUN_SPLITS and run_splits is not None and (run_splits["split"] == split).any():
        chosen = run_splits[run_splits["split"] == split]
        if table is not None:  # the dataset's own rows (e.g. center_crop) for those files
            return table[table["path"].isin(set(chosen["path"]))]
        return chosen
    if table is None:
        raise ConfigError(
            f"split {split!r} needs --data",
            hint="without --data only the run's own splits work: val, train, test",
        )
    known = sorted({s for s in table["split"] if s} | ({"val", "train"} if run_splits is not None else set()))
    raise ConfigError(
        f"no split {split!r} in this data", path=data, hint=f"choose one of: all, {', '.join(known)}"
    )


def labelled_rows(rows: pd.DataFrame, class_names: list[str], split: str) -> pd.DataFrame:
    """Labelled rows only; labels the model does not know are an error, not a silent drop."""
    labelled = rows[rows["label"].astype(str) != ""].reset_index(drop=True)
    if labelled.empty:
        raise DataError(
            f"split {split!r} has no labelled images",
            hint="unlabelled images (e.g. C-NMC final test) can only be predicted: `leukoscope predict`",
        )
    unknown = sorted(set(labelled["label"]) - set(class_names))
    if unknown:
        raise DataError(
            f"split {split!r} has labels the model does not know: {', '.join(unknown)}",
            hint=f"the model's classes are {', '.join(class_names)}",
        )
    return labelled


def cached_images(
    rows: pd.DataFrame, pre: Any, cache_dir: str | None, progress: bool
) -> tuple[np.ndarray, pd.DataFrame]:
    """Preprocessed uint8 images of the readable rows (unreadable ones are skipped and counted)."""
    from leukoscope.preprocess import PreprocessCache

    crops = rows["center_crop"].fillna(0).astype(int).tolist() if "center_crop" in rows else None
    cache = PreprocessCache(cache_dir).load(
        rows["path"].tolist(), pre, center_crops=crops, workers=2, progress=progress
    )
    ok = np.asarray(cache.ok, dtype=bool)
    if not ok.all():
        log.warning(
            "skipping %d unreadable images; e.g. %s", int((~ok).sum()), next(iter(cache.errors.values()), "")
        )
    if not ok.any():
        raise DataError("none of the images could be read", hint="run `leukoscope data check` on the data")
    rows = rows.assign(ok=ok)
    return cache.array, rows


def predict(model: Any, card: Any, images: np.ndarray, precision: str, batch_size: int) -> np.ndarray:
    """Probabilities in card.class_names order for every row (NaN where the image was unreadable)."""
    from leukoscope.infer.engine import InferenceEngine

    engine = InferenceEngine(model, card, precision=precision)
    probs = np.full((len(images), card.num_classes), np.nan, dtype=np.float32)
    for start in range(0, len(images), batch_size):
        probs[start : start + batch_size] = engine.predict_arrays(
            np.array(images[start : start + batch_size])
        )  # a writable copy
    return probs


def score(rows: pd.DataFrame, probs: np.ndarray, card: Any) -> dict[str, Any]:
    from leukoscope.evaluate.metrics import compute_metrics

    ok = rows["ok"].to_numpy(bool)
    known = bool(rows["subject_known"].astype(bool).all()) if "subject_known" in rows else False
    subjects = rows["subject"].astype(str).to_numpy()[ok] if known else None
    metrics = compute_metrics(
        rows["label"].astype(str).to_numpy()[ok],
        probs[ok],
        card.class_names,
        card.threshold,
        subjects,
        card.positive_class,
    )
    metrics |= {"unreadable": int((~ok).sum()), "subjects_known": known}
    return metrics


def training_overlap(model_dir: Path, rows: pd.DataFrame) -> dict[str, int]:
    """Files and (known) subjects of this split that the model trained on: non-zero = not a clean test."""
    run_splits = read_run_splits(model_dir)
    if run_splits is None:
        return {"files": 0, "subjects": 0, "checked": 0}
    train = run_splits[run_splits["split"] == "train"]
    files = int(rows["path"].isin(set(train["path"])).sum())
    known = rows[rows["subject_known"].astype(bool)] if "subject_known" in rows else rows.iloc[:0]
    train_subjects = set(train.loc[train["subject_known"], "subject"])
    subjects = len(set(known["subject"]) & train_subjects)
    if files or subjects:
        log.warning("this split shares %d files and %d subjects with the training split", files, subjects)
    return {"files": files, "subjects": subjects, "checked": 1}


def write_outputs(
    out_dir: Path, metrics: dict[str, Any], rows: pd.DataFrame, probs: np.ndarray, card: Any
) -> None:
    from leukoscope.evaluate.metrics import label_indices
    from leukoscope.evaluate.plots import plot_confusion_matrix, plot_roc
    from leukoscope.infer.engine import predicted_labels

    out_dir.mkdir(parents=True, exist_ok=True)
    ok = rows["ok"].to_numpy(bool)
    title = f"{card.backbone} on {metrics['split']} (n={metrics['n']})"
    plot_confusion_matrix(
        metrics["confusion_matrix"], card.class_names, out_dir / "confusion_matrix.png", title
    )
    y = label_indices(rows["label"].astype(str).to_numpy()[ok], card.class_names)
    plot_roc(y, probs[ok], card.class_names, out_dir / "roc.png", card.positive_class, title)
    table = rows[["path", "label", "subject"]].copy()
    table["predicted"] = ""
    table.loc[ok, "predicted"] = predicted_labels(probs[ok], card)
    for i, name in enumerate(card.class_names):
        table[f"p_{name}"] = probs[:, i]
    with atomic_path(out_dir / "predictions.csv") as tmp:
        table.to_csv(tmp, index=False)
    write_json(out_dir / "metrics.json", metrics)
