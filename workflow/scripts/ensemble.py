"""Rule `ensemble`: per backbone the loss with the best VALIDATION score, their probabilities averaged.

Writes `ensemble.json` (an `EnsembleSpec`: `leukoscope predict/serve` take it like a model), the choice
with every candidate's validation score, and the ensemble's predictions (the mean of its members').
"""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run


def choose(
    scores: dict[str, dict[str, Any]], backbones: list[str], losses: list[str], metric: str
) -> dict[str, str]:
    """backbone -> the loss whose validation `metric` is highest (ties: the earlier loss in the config)."""
    chosen = {}
    for b in backbones:

        def value(loss: str, b: str = b) -> float:
            v = scores[f"{b}/{loss}"].get(metric) if scores[f"{b}/{loss}"].get("n", 0) else None
            return float("-inf") if v is None else float(v)

        chosen[b] = max(losses, key=lambda loss: (value(loss), -losses.index(loss)))
    return chosen


def main(smk: Any) -> None:
    import pandas as pd

    from leukoscope._io import atomic_path, write_json
    from leukoscope.evaluate.predictions import class_names_of, mean_probabilities, score_split
    from leukoscope.experiments.ensemble import new_spec, save_spec

    files = smk.params.members
    scores = {m: json.loads(Path(p).read_text(encoding="utf-8")) for m, p in files["val"].items()}
    backbones, losses, metric = list(smk.params.backbones), list(smk.params.losses), smk.params.select
    chosen = choose(scores, backbones, losses, metric)
    members = [f"{b}/{chosen[b]}" for b in backbones]
    tables = [pd.read_parquet(files["predictions"][m]) for m in members]
    classes = class_names_of(tables[0])
    summary = json.loads(Path(smk.input.summary).read_text(encoding="utf-8"))
    predictions = mean_probabilities(tables, classes)
    with atomic_path(smk.output.predictions) as tmp:
        predictions.to_parquet(tmp, index=False)
    spec = new_spec(
        [smk.params.model_dirs[m] for m in members], "mean", threshold=float(smk.params.threshold)
    )
    val = score_split(predictions, "val", classes, spec.threshold, summary.get("positive_class"))
    spec.metrics = {k: val.get(k) for k in ("split", "n", "weighted_f1", "accuracy", "roc_auc")}
    spec.notes = [f"members: the best loss per backbone by validation {metric}: {', '.join(members)}"]
    save_spec(smk.output.spec, spec)
    candidates = {b: {loss: scores[f"{b}/{loss}"].get(metric) for loss in losses} for b in backbones}
    write_json(
        smk.output.choice,
        {"select": metric, "split": "val", "chosen": chosen, "members": members, "candidates": candidates},
    )
    print(f"ensemble of {', '.join(members)}: validation weighted F1 {val.get('weighted_f1')}")


run(snakemake, main)  # noqa: F821
