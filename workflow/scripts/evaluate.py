"""Rule `evaluate`: one model's (or the ensemble's) scores on each labelled split, one JSON per split.

The scores are those of the seed-averaged probabilities, with subject-level bootstrap 95% intervals
(`ci`); a backbone x loss trained with several seeds also gets each seed's own scores (`per_seed`), from
which the tables take the mean and standard deviation over seeds.
"""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run


def main(smk: Any) -> None:
    import pandas as pd

    from leukoscope._io import write_json
    from leukoscope.evaluate.predictions import score_model

    p = smk.params
    table = pd.read_parquet(smk.input.predictions)
    positive = json.loads(Path(smk.input.summary).read_text(encoding="utf-8")).get("positive_class")
    seeds = {s: pd.read_parquet(f) for s, f in zip(p.seeds, smk.input.seeds, strict=False)}
    for split, out in zip(p.splits, smk.output.scores, strict=True):
        scores = score_model(table, seeds, split, float(p.threshold), positive,
                             n_boot=int(p.bootstrap), seed=int(p.bootstrap_seed))  # fmt: skip
        write_json(out, scores | {"model": smk.wildcards.model})
        f1 = scores.get("weighted_f1")
        print(
            f"{smk.wildcards.model} {split}: n={scores['n']}"
            + (f", weighted F1 {f1:.4f}" if f1 is not None else "")
        )


run(snakemake, main)  # noqa: F821
