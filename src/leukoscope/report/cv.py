"""The cross-validation summary: mean and std over folds of every model's and the ensemble's scores.

`results/cv/summary.json`:
`{"folds": K, "split": "test", "selection": "inner", "models": {"densenet201/bce": {"weighted_f1": {"mean",
"std", "folds"}, ...}}, "ensemble": {...}, "chosen": {fold: {backbone: loss}}}`. Scores are each outer
fold's images (its held-out subjects), which neither trained nor chose anything: early stopping, the
loss and the ensemble were chosen on an inner validation split of the other folds ("selection":
"inner"). std is the sample standard deviation (ddof 1), 0 for a single value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)
KEYS = ("weighted_f1", "accuracy", "roc_auc")


def _stat(values: list[float | None]) -> dict[str, Any]:
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return {"mean": None, "std": None, "folds": values}
    std = float(np.std(kept, ddof=1)) if len(kept) > 1 else 0.0
    return {"mean": float(np.mean(kept)), "std": std, "folds": values}


def summarise(
    scores: Mapping[int, Mapping[str, Mapping[str, Any]]],
    chosen: Mapping[int, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """`scores[fold][model]` = that model's validation record (evaluate's JSON) -> the summary."""
    folds = sorted(scores)
    names = sorted({m for f in folds for m in scores[f]} - {"ensemble"})

    def block(model: str) -> dict[str, Any]:
        records = [scores[f].get(model, {}) for f in folds]
        return {k: _stat([r.get(k) if r.get("n", 0) else None for r in records]) for k in KEYS}

    out: dict[str, Any] = {
        "folds": len(folds),
        "split": "test",
        "selection": "inner",
        "models": {m: block(m) for m in names},
    }
    out["ensemble"] = block("ensemble")
    if chosen is not None:
        out["chosen"] = {f"fold_{f}": dict(chosen[f]) for f in sorted(chosen)}
    return out


def summary_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for name, block in [*summary["models"].items(), ("ensemble", summary["ensemble"])]:
        row: dict[str, Any] = {"model": name}
        for k in KEYS:
            mean, std = block[k]["mean"], block[k]["std"]
            row[f"{k} mean"] = None if mean is None else round(100 * mean, 2)
            row[f"{k} std"] = None if std is None else round(100 * std, 2)
        rows.append(row)
    return pd.DataFrame.from_records(rows)


def per_fold_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for name, block in [*summary["models"].items(), ("ensemble", summary["ensemble"])]:
        for fold, value in enumerate(block["weighted_f1"]["folds"]):
            if value is not None:
                rows.append({"model": name, "fold": f"fold_{fold}", "weighted_f1": value})
    return pd.DataFrame(rows, columns=["model", "fold", "weighted_f1"])


def cv_summary_stage(
    scores: Mapping[Any, Mapping[str, str | Path]],
    choices: Mapping[Any, str | Path],
    out_summary: str | Path,
    csv: str | Path,
    md: str | Path,
    figure: str | Path,
) -> dict[str, Any]:
    """The workflow's cv_summary rule: `summarise` the outer folds' score files (`scores[fold][model]`)
    and ensemble choices (`choices[fold]`) into summary.json, a table and the per-fold F1 figure."""
    from leukoscope._io import read_json, write_json
    from leukoscope.report.figures import cv_f1
    from leukoscope.report.tables import markdown, write_table

    records = {int(fold): {m: read_json(p) for m, p in files.items()} for fold, files in scores.items()}
    chosen = {int(fold): read_json(path)["chosen"] for fold, path in choices.items()}
    summary = summarise(records, chosen)
    write_json(out_summary, summary)
    table = summary_table(summary)
    write_table(table, csv, md, f"{summary['folds']}-fold cross-validation", [
        "Mean and standard deviation (%) over the outer folds (each fold's held-out subjects, scored only); "
        "early stopping and the choice of the ensemble's members used an inner validation split of the "
        "other folds' subjects, so no row is selected on what it is scored on.",
    ])  # fmt: skip
    cv_f1(per_fold_frame(summary), figure, "weighted F1 per fold")
    log.info("%s", markdown(table, "cross-validation", []))
    return summary
