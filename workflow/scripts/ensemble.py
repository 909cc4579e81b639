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
    from leukoscope._io import atomic_path, write_json
    from leukoscope.experiments.selection import best_loss_ensemble
    from leukoscope.infer.spec import save_spec

    p = smk.params
    records = {m: json.loads(Path(f).read_text(encoding="utf-8")) for m, f in p.members["val"].items()}
    summary = json.loads(Path(smk.input.summary).read_text(encoding="utf-8"))
    predictions, spec, choice = best_loss_ensemble(
        records, p.members["predictions"], p.model_dirs, list(p.backbones), list(p.losses), p.select,
        float(p.threshold), summary.get("positive_class"),
    )  # fmt: skip
    with atomic_path(smk.output.predictions) as tmp:
        predictions.to_parquet(tmp, index=False)
    save_spec(smk.output.spec, spec)
    write_json(smk.output.choice, choice)
    members, f1 = ", ".join(choice["members"]), spec.metrics.get("weighted_f1")
    print(f"ensemble of {members} ({len(choice['models'])} models): validation weighted F1 {f1}")


run(snakemake, main)  # noqa: F821
