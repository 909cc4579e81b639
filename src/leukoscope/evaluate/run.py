"""Evaluate a trained model on a labelled split: metrics.json, confusion matrix, ROC, per-image predictions.

The images go through the same cache and card preprocessing as training and the same predictor
(`infer.predictor.load_predictor`, `predict_table`) as `predict` and `serve`, so the numbers here are the
numbers a deployed model gets; they are scored as a prediction table by `evaluate.predictions.score_split`,
as the workflow's evaluate rule scores its tables. A split that shares subjects or files with the run's
training split is flagged in the output, never silently scored.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoscope._io import atomic_path
from leukoscope.errors import ConfigError, DataError
from leukoscope.evaluate.predictions import prediction_table, prob_columns, score_split, usable_rows
from leukoscope.infer.ensemble import Ensemble
from leukoscope.infer.predictor import Predictor, load_predictor, predict_table, predicted_labels
from leukoscope.infer.tta import check_mode

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
    tta: str = "none",
    bootstrap: int = 0,
    backend: str = "auto",
    seed: int = 0,
    compile: bool = False,
) -> dict[str, Any]:
    """Score the model in `model_dir` on `split` of `data` (or of its own splits.csv); returns metrics.

    `model_dir`: a model folder, an ensemble spec or an export (anything `predict` takes).
    `split`: one of the dataset's own splits (C-NMC `prelim`, `fold_0`...), the run's `val` / `train` /
    `test` (from splits.csv; `data` may then be None), or `all` (every labelled image; the default).
    `bootstrap` > 0 adds subject-level bootstrap CIs for weighted F1 and AUC.
    Outputs go to `out` (default `model_dir/eval-<split>/`, beside the file for `.onnx`/`.json`).
    `compile`: XLA for the Keras backend (see `infer.keras_backend.KerasPredictor`).
    """
    check_mode(tta)
    model_dir = Path(model_dir)
    predictor = load_predictor(model_dir, backend=backend, precision=precision, compile=compile)
    card = predictor.card
    name = split or "all"
    run_dirs = member_dirs(model_dir, predictor)
    rows = select_rows(run_dirs[0] if len(run_dirs) == 1 else model_dir, data, name)
    rows = labelled_rows(rows, card.class_names, name)
    probs, ok = predict_table(
        predictor, rows, tta=tta, cache_dir=cache_dir, batch_size=batch_size, progress=progress
    )
    rows = rows.assign(ok=ok)
    table = prediction_table(rows, probs, card.class_names, name)
    metrics = score(table, card)
    metrics |= {
        "split": name,
        "data": str(data) if data else None,
        "model_dir": str(model_dir),
        "model_id": predictor.model_id,
        "backend": predictor.backend,
        "precision": predictor.precision,
        "tta": tta,
        "training_overlap": training_overlap(run_dirs, rows),
    }
    metrics |= calibration(table, card)
    if bootstrap:
        metrics["bootstrap"] = bootstrap_intervals(table, card, bootstrap, seed)
    folder = model_dir if model_dir.is_dir() else model_dir.parent
    out_dir = Path(out) if out is not None else folder / f"eval-{name}"
    write_outputs(out_dir, metrics, rows, probs, table, card, run_dirs)
    metrics["out"] = str(out_dir)
    return metrics


def member_dirs(model_path: Path, predictor: Predictor) -> list[Path]:
    """The run directories behind a model: itself, an ensemble's members, or none for a bare export file."""
    if isinstance(predictor, Ensemble):
        return predictor.run_dirs
    folder = model_path if model_path.is_dir() else model_path.parent
    if (model_path / "saved_model.pb").is_file():
        return []
    return [folder] if (folder / "splits.csv").is_file() or model_path.is_dir() else []


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


SPLIT_COUNTS = ("split", "images", "unreadable", "unlabelled", "positive", "subject_known")


def score(table: pd.DataFrame, card: Any) -> dict[str, Any]:
    """The workflow's `score_split` of the table's one split, with its per-subject numbers; metrics.json
    keeps its own layout (the counts last, `subjects_known`)."""
    split = str(table["split"].iat[0])
    scores = score_split(table, split, card.class_names, card.threshold, card.positive_class,
                         per_subject=True)  # fmt: skip
    if not scores["n"]:
        raise DataError(f"no readable images in split {split!r}", hint="run `leukoscope data check`")
    metrics = {k: v for k, v in scores.items() if k not in SPLIT_COUNTS}
    return metrics | {"unreadable": scores["unreadable"], "subjects_known": scores["subject_known"]}


def training_overlap(run_dirs: list[Path], rows: pd.DataFrame) -> dict[str, int]:
    """Files and (known) subjects of this split that the model (any member) trained on: non-zero = leak."""
    trained = [s[s["split"] == "train"] for d in run_dirs if (s := read_run_splits(d)) is not None]
    if not trained:
        return {"files": 0, "subjects": 0, "checked": 0}
    train = pd.concat(trained)
    files = int(rows["path"].isin(set(train["path"])).sum())
    known = rows[rows["subject_known"].astype(bool)] if "subject_known" in rows else rows.iloc[:0]
    train_subjects = set(train.loc[train["subject_known"], "subject"])
    subjects = len(set(known["subject"]) & train_subjects)
    if files or subjects:
        log.warning("this split shares %d files and %d subjects with the training split", files, subjects)
    return {"files": files, "subjects": subjects, "checked": 1}


def _scored(table: pd.DataFrame, card: Any) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(the scored rows, their class indices, their probabilities)."""
    from leukoscope.evaluate.metrics import label_indices

    rows = usable_rows(table, card.class_names)
    y = label_indices(rows["label"].to_numpy(str), card.class_names)
    return rows, y, rows[prob_columns(card.class_names)].to_numpy(np.float64)


def calibration(table: pd.DataFrame, card: Any) -> dict[str, Any]:
    """ECE / MCE / Brier: how far the probabilities can be taken at face value."""
    from leukoscope.evaluate.calibration import calibration_summary
    from leukoscope.evaluate.metrics import positive_index

    _, y, p = _scored(table, card)
    return {"calibration": calibration_summary(y, p, positive_index(card.class_names, card.positive_class))}


def bootstrap_intervals(table: pd.DataFrame, card: Any, n_boot: int, seed: int) -> dict[str, Any]:
    """Resampling whole subjects (cells of one patient are not independent) where subjects are known."""
    from leukoscope.evaluate.bootstrap import bootstrap_ci
    from leukoscope.evaluate.metrics import positive_index

    rows, y, p = _scored(table, card)
    known = bool(rows["subject_known"].all())
    subjects = rows["subject"].to_numpy(str) if known else None
    return bootstrap_ci(
        y, p, subjects, n_boot=n_boot, seed=seed, threshold=card.threshold if card.num_classes == 2 else 0.5,
        positive_index=positive_index(card.class_names, card.positive_class),
    )  # fmt: skip


def write_outputs(
    out_dir: Path,
    metrics: dict[str, Any],
    rows: pd.DataFrame,
    probs: np.ndarray,
    table: pd.DataFrame,
    card: Any,
    run_dirs: list[Path],
) -> None:
    """predictions.csv (`probs` as predicted, float32), the figures, metrics.json and a report.html."""
    from leukoscope.evaluate.metrics import label_indices
    from leukoscope.evaluate.plots import evaluation_figures

    out_dir.mkdir(parents=True, exist_ok=True)
    ok = rows["ok"].to_numpy(bool)
    _, y, _ = _scored(table, card)
    p = probs[ok]  # as predicted (float32): the figures decide as predictions.csv does
    title = f"{card.backbone} on {metrics['split']} (n={metrics['n']})"
    figures = evaluation_figures(out_dir, y, p, card.class_names, metrics["positive_class"],
                                 metrics["threshold"] or 0.5, title)  # fmt: skip
    for run_dir in run_dirs:
        if (run_dir / "curves.png").is_file():
            figures[f"training curves ({run_dir.name})"] = run_dir / "curves.png"
    written = rows[["path", "label", "subject"]].copy()
    written["predicted"] = ""
    written.loc[ok, "predicted"] = predicted_labels(probs[ok], card)
    for i, name in enumerate(card.class_names):
        written[f"p_{name}"] = probs[:, i]
    with atomic_path(out_dir / "predictions.csv") as tmp:
        written.to_csv(tmp, index=False)
    pred = label_indices(written.loc[ok, "predicted"].astype(str).to_numpy(), card.class_names)
    write_evaluation_report(out_dir, metrics, figures, written[ok], y, p, pred, card)


def write_evaluation_report(
    out_dir: Path, metrics: dict[str, Any], figures: dict[str, Path], table: pd.DataFrame,
    y: np.ndarray, probs: np.ndarray, pred: np.ndarray, card: Any,
) -> Path:  # fmt: skip
    from leukoscope.evaluate.html_report import confident_errors, write_report

    notes = []
    overlap = metrics["training_overlap"]
    if overlap.get("files") or overlap.get("subjects"):
        notes.append(f"{overlap['files']} files / {overlap['subjects']} subjects of this split were in "
                     "training: this is not a held-out score.")  # fmt: skip
    if not metrics.get("subjects_known"):
        from leukoscope.evaluate.html_report import UNKNOWN_SUBJECTS

        notes.append(UNKNOWN_SUBJECTS)
    errors = confident_errors(table["path"].astype(str).tolist(), y, probs, card.class_names, pred)
    title = f"{card.backbone} on {metrics['split']}: weighted F1 {100 * metrics['weighted_f1']:.2f}"
    return write_report(out_dir, metrics, figures, errors, title, notes=notes)
