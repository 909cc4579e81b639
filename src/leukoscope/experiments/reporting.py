"""HTML reports for cross-validation, the Table 2 grid and ensembles (built on `evaluate.report`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoscope._io import write_text
from leukoscope.evaluate.plots import evaluation_figures
from leukoscope.evaluate.report import UNKNOWN_SUBJECTS


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
