"""HTML reports for cross-validation, the Table 2 grid and ensembles (built on `evaluate.report`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoscope._io import write_text

UNKNOWN_SUBJECTS = (
    "Subjects are unknown for these images: each image is its own subject, so folds/splits cannot rule out "
    "images of the same patient on both sides; scores may be optimistic."
)


def evaluation_figures(
    plots_dir: Path,
    y: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    positive_class: str | None,
    threshold: float,
    title: str = "",
) -> dict[str, Path]:
    """Confusion matrix, ROC and reliability diagram PNGs (written to `plots_dir`)."""
    from sklearn.metrics import confusion_matrix

    from leukoscope.evaluate.bootstrap import predict_indices
    from leukoscope.evaluate.calibration import reliability_diagram
    from leukoscope.evaluate.plots import plot_confusion_matrix, plot_roc

    pos = list(class_names).index(positive_class) if positive_class else 1
    pred = predict_indices(probs, threshold, pos)
    cm = confusion_matrix(y, pred, labels=list(range(len(class_names))))
    figures = {
        "confusion matrix": plot_confusion_matrix(cm, class_names, plots_dir / "confusion_matrix.png", title),
        "ROC": plot_roc(y, probs, class_names, plots_dir / "roc.png", positive_class, title),
    }
    reliability_diagram(y, probs, plots_dir / "reliability.png", title=f"{title} reliability".strip())
    figures["reliability diagram"] = plots_dir / "reliability.png"
    return figures


def oof_arrays(oof: pd.DataFrame, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    from leukoscope.evaluate.metrics import label_indices

    probs = oof[[f"p_{c}" for c in class_names]].to_numpy(float)
    return label_indices(oof["label"].astype(str).to_numpy(), class_names), probs


def write_cv_report(out: Path, summary: dict[str, Any], oof: pd.DataFrame) -> Path:
    """Per-fold table, mean ± std, pooled out-of-fold figures, per-subject table and confident errors."""
    from leukoscope.evaluate.metrics import subject_metrics
    from leukoscope.evaluate.report import confident_errors, render_report

    names = summary["class_names"]
    pooled = summary["pooled"]
    y, probs = oof_arrays(oof, names)
    figures = evaluation_figures(
        out / "plots",
        y,
        probs,
        names,
        pooled.get("positive_class"),
        pooled.get("threshold") or 0.5,
        "out-of-fold",
    )
    for f in range(summary["k"]):
        curves = out / f"fold_{f}" / "curves.png"
        if curves.is_file():
            figures[f"fold {f} training curves"] = curves
    pred = np.array([names.index(p) for p in oof["pred"].astype(str)])
    tables: dict[str, Any] = {
        "Per fold": summary["folds"],
        "Mean ± std over folds": [
            {"metric": k, "mean": summary["mean"][k], "std": summary["std"][k]} for k in summary["mean"]
        ],
    }
    if "bootstrap" in pooled:
        tables["Subject-level bootstrap (pooled out-of-fold)"] = [
            {"metric": k, **v} for k, v in pooled["bootstrap"].items()
        ]
    if summary["subject_known"]:
        subj = subject_metrics(y, pred, oof["subject"].astype(str).to_numpy(), names)["per_subject"]
        tables["Per subject (out-of-fold)"] = [{"subject": s, **v} for s, v in subj.items()]
    display = {k: v for k, v in pooled.items() if k not in ("bootstrap",)}
    display = {"n_images": summary["n_images"], "k": summary["k"], "tta": summary["tta"]} | display
    notes = [
        f"{summary['k']}-fold cross-validation"
        + (
            " on the dataset's official folds."
            if summary["official_folds"]
            else ", grouped by subject, stratified by class."
        )
    ]
    if not summary["subject_known"]:
        notes.append(UNKNOWN_SUBJECTS)
    errors = confident_errors(list(oof["path"].astype(str)), y, probs, names, pred)
    html = render_report(
        f"Cross-validation ({summary['k']} folds): weighted F1 "
        f"{_pct(summary['mean']['weighted_f1'])} ± {_pct(summary['std']['weighted_f1'])}",
        display, figures, errors, tables, notes, "Pooled out-of-fold metrics",
    )  # fmt: skip
    return write_text(out / "report.html", html)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"
