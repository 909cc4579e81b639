"""Rule `evaluate`: one model's (or the ensemble's) scores on each labelled split, one JSON per split.

The scores are those of the seed-averaged probabilities, with subject-level bootstrap 95% intervals
(`ci`); a backbone x loss trained with several seeds also gets each seed's own scores (`per_seed`), from
which the tables take the mean and standard deviation over seeds.
"""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run

PER_SEED = ("weighted_f1", "accuracy", "roc_auc")


def main(smk: Any) -> None:
    import pandas as pd

    from leukoscope._io import write_json
    from leukoscope.evaluate.predictions import class_names_of, score_split, score_with_intervals

    table = pd.read_parquet(smk.input.predictions)
    summary = json.loads(Path(smk.input.summary).read_text(encoding="utf-8"))
    classes, positive = class_names_of(table), summary.get("positive_class")
    threshold = float(smk.params.threshold)
    seed_tables = {s: pd.read_parquet(p) for s, p in zip(smk.params.seeds, smk.input.seeds, strict=False)}
    for split, out in zip(smk.params.splits, smk.output.scores, strict=True):
        scores = score_with_intervals(
            table, split, classes, threshold, positive,
            n_boot=int(smk.params.bootstrap), seed=int(smk.params.bootstrap_seed),
        )  # fmt: skip
        if seed_tables:
            scores["per_seed"] = {}
            for seed, seed_table in seed_tables.items():
                own = score_split(seed_table, split, classes, threshold, positive)
                scores["per_seed"][str(seed)] = {k: own.get(k) for k in PER_SEED} | {
                    "positive_f1": own.get("positive", {}).get("f1")
                }
        write_json(out, scores | {"model": smk.wildcards.model})
        f1 = scores.get("weighted_f1")
        print(
            f"{smk.wildcards.model} {split}: n={scores['n']}"
            + (f", weighted F1 {f1:.4f}" if f1 is not None else "")
        )


run(snakemake, main)  # noqa: F821
