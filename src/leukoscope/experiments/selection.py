# ruff: noqa: RUF009  (`opt` returns a dataclasses.field)
"""Which models form the workflow's ensemble: per backbone, the loss with the best validation score.

Validation only (never the scored test split); with several seeds, a loss's score is the mean of its
seeds' own validation scores, so one lucky seed does not pick a loss. Ties go to the loss listed first.
The members are chosen among prediction tables the workflow already has, so no model is run here;
`leukoscope ensemble` (`experiments.ensemble.build_ensemble`) instead combines the runs it is given and fits
weights and a threshold. Both score validation through `evaluate.predictions.score_rows` and record it in
the spec alike (`experiments.ensemble.spec_metrics`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from leukoscope._io import atomic_path, read_json, write_json
from leukoscope.config import opt

log = logging.getLogger(__name__)


SelectMetric = Literal["weighted_f1", "accuracy", "roc_auc"]


@dataclass
class EnsembleConfig:
    select: SelectMetric = opt("weighted_f1", "validation metric that picks each backbone's loss")


def seed_mean_score(record: Mapping[str, Any], metric: str) -> float | None:
    """A model's validation `metric`: the mean over its seeds where it has several, else its own."""
    if not record.get("n", 0):
        return None
    per_seed = [s.get(metric) for s in record.get("per_seed", {}).values()]
    per_seed = [float(v) for v in per_seed if v is not None]
    if len(per_seed) > 1:
        return sum(per_seed) / len(per_seed)
    value = record.get(metric)
    return None if value is None else float(value)


def choose_members(
    scores: Mapping[str, float | None], backbones: list[str], losses: list[str]
) -> dict[str, str]:
    """backbone -> the loss whose score (`scores['backbone/loss']`) is highest."""
    chosen = {}
    for b in backbones:

        def value(loss: str, b: str = b) -> float:
            v = scores.get(f"{b}/{loss}")
            return float("-inf") if v is None else float(v)

        chosen[b] = max(losses, key=lambda loss: (value(loss), -losses.index(loss)))
    return chosen


def best_loss_ensemble(
    val_scores: Mapping[str, Mapping[str, Any]],
    predictions: Mapping[str, list[str]],
    backbones: list[str],
    losses: list[str],
    metric: str,
    threshold: float,
    positive_class: str | None,
) -> tuple[Any, Any, dict[str, Any]]:
    """The workflow's ensemble: per backbone the best loss on validation (`metric`, seed mean), every
    seed of those models averaged. Each seed's predictions lie in its model folder (the predict rule
    writes them there), which the spec names. (predictions table, EnsembleSpec, choice record)."""
    import pandas as pd

    from leukoscope.evaluate.predictions import class_names_of, mean_probabilities, score_split
    from leukoscope.experiments.ensemble import spec_metrics
    from leukoscope.infer.spec import new_spec

    scores = {m: seed_mean_score(r, metric) for m, r in val_scores.items()}
    chosen = choose_members(scores, backbones, losses)
    members = [f"{b}/{chosen[b]}" for b in backbones]
    tables = [pd.read_parquet(p) for m in members for p in predictions[m]]
    classes = class_names_of(tables[0])
    averaged = mean_probabilities(tables, classes)
    folders = [str(Path(p).parent) for m in members for p in predictions[m]]
    spec = new_spec(folders, "mean", threshold=threshold)
    val = score_split(averaged, "val", classes, spec.threshold, positive_class)
    spec.metrics = spec_metrics(val)
    spec.notes = [
        f"members: the best loss per backbone by validation {metric} (seed mean): {', '.join(members)}; "
        f"{len(folders)} model(s) averaged (not in the paper: its ensemble combines 'the best results' of "
        "the two networks)"
    ]
    choice = {
        "select": metric,
        "split": "val",
        "chosen": chosen,
        "members": members,
        "models": folders,
        "candidates": {b: {loss: scores[f"{b}/{loss}"] for loss in losses} for b in backbones},
    }
    return averaged, spec, choice


def ensemble_stage(
    val_scores: Mapping[str, str | Path],
    predictions: Mapping[str, list[str]],
    summary: str | Path,
    out_spec: str | Path,
    out_choice: str | Path,
    out_predictions: str | Path,
    *,
    backbones: list[str],
    losses: list[str],
    select: str,
    threshold: float,
) -> dict[str, Any]:
    """The workflow's ensemble rule: `best_loss_ensemble` of the candidates' validation score files.

    Writes the spec (`leukoscope predict/serve` take it like a model), the choice with every candidate's
    validation score, and the ensemble's predictions; returns the choice.
    """
    from leukoscope.infer.spec import save_spec

    records = {model: read_json(path) for model, path in val_scores.items()}
    averaged, spec, choice = best_loss_ensemble(
        records, predictions, list(backbones), list(losses), select, float(threshold),
        read_json(summary).get("positive_class"),
    )  # fmt: skip
    with atomic_path(out_predictions) as tmp:
        averaged.to_parquet(tmp, index=False)
    save_spec(out_spec, spec)
    write_json(out_choice, choice)
    log.info("ensemble of %s (%d models): validation weighted F1 %s", ", ".join(choice["members"]),
             len(choice["models"]), spec.metrics.get("weighted_f1"))  # fmt: skip
    return choice
