"""Building an ensemble on VALIDATION data: member weights, the decision threshold, scores and a report.

`build_ensemble` loads the runs as an `infer.ensemble.Ensemble`, predicts the validation images once per
member, fits what the method needs and saves the spec (`ensemble.json`, `infer.spec`) with an HTML report
beside it. `weighted` fits a convex combination minimising log-loss (default: smooth, hard to overfit) or
maximising weighted F1 (a simplex grid); `mean` and `mc-dropout` fit only the threshold (if asked).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leukoscope.errors import ConfigError
from leukoscope.infer.ensemble import Ensemble, ensemble_of
from leukoscope.infer.spec import new_spec, save_spec
from leukoscope.models.card import ModelCard

OBJECTIVES = ("log-loss", "f1")
SPEC_METRICS = ("split", "n", "weighted_f1", "accuracy", "roc_auc")  # what a spec records of its validation


def spec_metrics(scores: Mapping[str, Any]) -> dict[str, Any]:
    """The validation scores an ensemble spec carries, whichever way the ensemble was built."""
    return {k: scores.get(k) for k in SPEC_METRICS}


def fit_weights(
    member_probs: np.ndarray,
    y: np.ndarray,
    objective: str = "log-loss",
    threshold: float = 0.5,
    positive_index: int = 1,
) -> np.ndarray:
    """Convex member weights fitted on validation probabilities (M, N, C) and labels (N,)."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {objective!r}", hint=f"choose one of: {', '.join(OBJECTIVES)}")
    if len(member_probs) == 1:
        return np.ones(1)
    if objective == "f1":
        return _grid_f1_weights(member_probs, y, threshold, positive_index)
    return _log_loss_weights(member_probs, y)


def _log_loss_weights(member_probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import minimize

    picked = member_probs[:, np.arange(len(y)), y]  # (M, N): each member's probability of the truth

    def loss(theta: np.ndarray) -> float:
        w = np.exp(theta - theta.max())
        w /= w.sum()
        return float(-np.mean(np.log(np.clip(w @ picked, 1e-12, None))))

    theta = minimize(loss, np.zeros(len(member_probs)), method="L-BFGS-B").x
    w = np.exp(theta - theta.max())
    return w / w.sum()


def _simplex_grid(m: int, step: float) -> np.ndarray:
    n = round(1 / step)

    def rec(k: int, left: int) -> list[list[int]]:
        if k == 1:
            return [[left]]
        return [[i, *rest] for i in range(left + 1) for rest in rec(k - 1, left - i)]

    return np.asarray(rec(m, n), dtype=np.float64) / n


def _grid_f1_weights(
    member_probs: np.ndarray, y: np.ndarray, threshold: float, positive_index: int
) -> np.ndarray:
    from leukoscope.evaluate.bootstrap import metric_value
    from leukoscope.evaluate.metrics import decide

    m = len(member_probs)
    if m > 5:
        raise ConfigError("objective f1 searches a grid and supports at most 5 members", hint="use log-loss")
    grid = _simplex_grid(m, 0.05 if m <= 3 else 0.1)
    uniform = np.full(m, 1.0 / m)
    best, best_key = uniform, (-1.0, 0.0)
    for w in grid:
        probs = np.tensordot(w, member_probs, axes=1)
        f1 = metric_value("weighted_f1", y, probs, decide(probs, threshold, positive_index))
        key = (round(f1, 12), -float(np.abs(w - uniform).sum()))  # ties: the most even weights
        if key > best_key:
            best, best_key = w, key
    return best


# --- building an ensemble on validation data -----------------------------------------------------------


def build_ensemble(
    run_dirs: Sequence[str | Path],
    val: str | Path,
    out: str | Path,
    *,
    method: str = "mean",
    objective: str = "log-loss",
    confidence: str = "inverse-variance",
    mc_samples: int = 16,
    mc_p: float = 0.2,
    tta: str = "none",
    threshold: str = "fixed",
    bootstrap: int = 0,
    cache_dir: str | None = None,
    seed: int = 0,
    val_split: str | None = None,
) -> dict[str, Any]:
    """Fit (weights, threshold) on VALIDATION data, score ensemble and members there, save the spec."""
    from leukoscope.evaluate.thresholds import tune_for_classes
    from leukoscope.experiments._data import drop_unreadable, labels_of, validation_table
    from leukoscope.infer.tta import check_mode

    check_mode(tta)
    options = {"confidence": confidence, "mc_samples": mc_samples, "mc_p": mc_p, "tta": tta, "seed": seed}
    spec = new_spec(run_dirs, method, **options)
    ens = ensemble_of(spec)
    table = validation_table(val, spec.class_names, spec.members, val_split)
    member_probs, conf, ok = ens.table_members(table, tta, cache_dir)
    table = drop_unreadable(table, ok, "validation")
    member_probs, conf = member_probs[:, ok], (conf[:, ok] if conf is not None else None)
    y = labels_of(table, spec.class_names)
    pos = ens.card.positive_index
    if method == "weighted":
        spec.weights = fit_weights(member_probs, y, objective, spec.threshold, pos).round(6).tolist()
        spec.weights = (np.asarray(spec.weights) / np.sum(spec.weights)).tolist()
    probs = ens.combine(member_probs, conf)
    spec.threshold = tune_for_classes(
        threshold, y, probs, spec.class_names, spec.positive_class, spec.threshold
    )
    ens.card.threshold = spec.threshold
    summary = _validation_summary(ens, member_probs, probs, table, y, bootstrap, seed, objective)
    spec.metrics = spec_metrics(summary)
    path = save_spec(out, spec)
    _write_ensemble_report(Path(path).parent, ens, summary, table, y, probs)
    return summary | {
        "spec": str(path),
        "method": method,
        "weights": spec.weights,
        "threshold": spec.threshold,
    }


def _validation_summary(
    ens: Ensemble,
    member_probs: np.ndarray,
    probs: np.ndarray,
    table: Any,
    y: np.ndarray,
    bootstrap: int,
    seed: int,
    objective: str,
) -> dict[str, Any]:
    from leukoscope.evaluate.bootstrap import bootstrap_ci
    from leukoscope.evaluate.calibration import calibration_summary
    from leukoscope.evaluate.predictions import prediction_table, score_rows

    card = ens.card
    known = bool(table["subject_known"].all())
    subjects = table["subject"].to_numpy(str) if known else None
    labels = table["label"].to_numpy(str)
    scored = prediction_table(table.assign(ok=True), probs, card.class_names, "val")
    m = score_rows(scored, card.class_names, card.threshold, card.positive_class)  # as the workflow scores
    m["calibration"] = calibration_summary(y, probs, card.positive_index)
    m["members"] = [
        {"run": mem.path, "weighted_f1": _member_f1(labels, p, mem.card, card.class_names)}
        for mem, p in zip(ens.members, member_probs, strict=True)
    ]
    if bootstrap:
        m["bootstrap"] = bootstrap_ci(
            y,
            probs,
            subjects,
            n_boot=bootstrap,
            seed=seed,
            threshold=card.threshold,
            positive_index=card.positive_index,
        )
    return m | {"split": "val", "subject_known": known, "objective": objective, "notes": list(ens.spec.notes)}


def _member_f1(labels: np.ndarray, probs: np.ndarray, card: ModelCard, class_names: list[str]) -> float:
    """A member scored with its own decision threshold (its probabilities are in the ensemble's order)."""
    from leukoscope.evaluate.metrics import compute_metrics

    return compute_metrics(labels, probs, class_names, card.threshold, None, card.positive_class)[
        "weighted_f1"
    ]


def _write_ensemble_report(
    out: Path, ens: Ensemble, summary: dict[str, Any], table: Any, y: np.ndarray, probs: np.ndarray
) -> Path:
    from leukoscope.evaluate.html_report import UNKNOWN_SUBJECTS, confident_errors, write_report
    from leukoscope.evaluate.metrics import decide
    from leukoscope.evaluate.plots import evaluation_figures

    card = ens.card
    figures = evaluation_figures(
        out / "plots", y, probs, card.class_names, card.positive_class, card.threshold, "ensemble (val)"
    )
    pred = decide(probs, card.threshold, card.positive_index)
    errors = confident_errors(list(table["path"]), y, probs, card.class_names, pred)
    notes = [
        f"Ensemble method {ens.spec.method}; weights and threshold were fitted on this validation set, "
        "so its scores here are optimistic: evaluate the spec on a test set.",
        *ens.spec.notes,
    ]
    if not summary["subject_known"]:
        notes.append(UNKNOWN_SUBJECTS)
    tables = {"Members": summary["members"]}
    if "bootstrap" in summary:
        tables["Subject-level bootstrap"] = [{"metric": k, **v} for k, v in summary["bootstrap"].items()]
    shown = {k: v for k, v in summary.items() if k not in ("members", "bootstrap", "notes", "per_subject")}
    return write_report(out, shown, figures, errors, "Ensemble (validation)", tables, notes)
