"""Which models form the workflow's ensemble: per backbone, the loss with the best validation score.

Validation only (never the scored test split); with several seeds, a loss's score is the mean of its
seeds' own validation scores, so one lucky seed does not pick a loss. Ties go to the loss listed first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
    model_dirs: Mapping[str, list[str]],
    backbones: list[str],
    losses: list[str],
    metric: str,
    threshold: float,
    positive_class: str | None,
) -> tuple[Any, Any, dict[str, Any]]:
    """The workflow's ensemble: per backbone the best loss on validation (`metric`, seed mean), every
    seed of those models averaged. (predictions table, EnsembleSpec, choice record)."""
    import pandas as pd

    from leukoscope.evaluate.predictions import class_names_of, mean_probabilities, score_split
    from leukoscope.infer.spec import new_spec

    scores = {m: seed_mean_score(r, metric) for m, r in val_scores.items()}
    chosen = choose_members(scores, backbones, losses)
    members = [f"{b}/{chosen[b]}" for b in backbones]
    tables = [pd.read_parquet(p) for m in members for p in predictions[m]]
    classes = class_names_of(tables[0])
    averaged = mean_probabilities(tables, classes)
    folders = [d for m in members for d in model_dirs[m]]
    spec = new_spec(folders, "mean", threshold=threshold)
    val = score_split(averaged, "val", classes, spec.threshold, positive_class)
    spec.metrics = {k: val.get(k) for k in ("split", "n", "weighted_f1", "accuracy", "roc_auc")}
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
