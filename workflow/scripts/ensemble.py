"""Rule `ensemble`: per backbone the loss with the best VALIDATION score, averaged over backbones and seeds.

The paper forms its ensemble from "the best results of the two models"; choosing each backbone's loss on
validation and averaging the probabilities are this workflow's reading of that (not in the paper). With
several seeds a loss is chosen on its seed-mean validation score, and the ensemble averages every seed's
model of the chosen losses. Writes `ensemble.json` (an `EnsembleSpec`: `leukoscope predict/serve` take
it like a model), the choice with every candidate's validation score, and the ensemble's predictions.
"""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run


def main(smk: Any) -> None:
    import pandas as pd

    from leukoscope._io import atomic_path, write_json
    from leukoscope.evaluate.predictions import class_names_of, mean_probabilities, score_split
    from leukoscope.experiments.selection import choose_members, seed_mean_score
    from leukoscope.infer.spec import new_spec, save_spec

    files = smk.params.members
    records = {m: json.loads(Path(p).read_text(encoding="utf-8")) for m, p in files["val"].items()}
    backbones, losses, metric = list(smk.params.backbones), list(smk.params.losses), smk.params.select
    scores = {m: seed_mean_score(r, metric) for m, r in records.items()}
    chosen = choose_members(scores, backbones, losses)
    members = [f"{b}/{chosen[b]}" for b in backbones]
    paths = [p for m in members for p in files["predictions"][m]]
    tables = [pd.read_parquet(p) for p in paths]
    classes = class_names_of(tables[0])
    summary = json.loads(Path(smk.input.summary).read_text(encoding="utf-8"))
    predictions = mean_probabilities(tables, classes)
    with atomic_path(smk.output.predictions) as tmp:
        predictions.to_parquet(tmp, index=False)
    folders = [d for m in members for d in smk.params.model_dirs[m]]
    spec = new_spec(folders, "mean", threshold=float(smk.params.threshold))
    val = score_split(predictions, "val", classes, spec.threshold, summary.get("positive_class"))
    spec.metrics = {k: val.get(k) for k in ("split", "n", "weighted_f1", "accuracy", "roc_auc")}
    spec.notes = [
        f"members: the best loss per backbone by validation {metric} (seed mean): {', '.join(members)}; "
        f"{len(folders)} model(s) averaged (not in the paper: its ensemble combines 'the best results' of "
        "the two networks)"
    ]
    save_spec(smk.output.spec, spec)
    candidates = {b: {loss: scores[f"{b}/{loss}"] for loss in losses} for b in backbones}
    write_json(
        smk.output.choice,
        {
            "select": metric,
            "split": "val",
            "chosen": chosen,
            "members": members,
            "models": folders,
            "candidates": candidates,
        },
    )
    f1 = val.get("weighted_f1")
    print(f"ensemble of {', '.join(members)} ({len(folders)} models): validation weighted F1 {f1}")


run(snakemake, main)  # noqa: F821
