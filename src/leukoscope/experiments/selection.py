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
