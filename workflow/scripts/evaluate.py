"""Rule `evaluate`: the scores of one model (or the ensemble) on each labelled split, one JSON per split."""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run


def main(smk: Any) -> None:
    import pandas as pd

    from leukoscope._io import write_json
    from leukoscope.evaluate.predictions import class_names_of, score_split

    table = pd.read_parquet(smk.input.predictions)
    summary = json.loads(Path(smk.input.summary).read_text(encoding="utf-8"))
    classes = class_names_of(table)
    for split, out in zip(smk.params.splits, smk.output.scores, strict=True):
        scores = score_split(
            table, split, classes, float(smk.params.threshold), summary.get("positive_class")
        )
        write_json(out, scores | {"model": smk.wildcards.model})
        f1 = scores.get("weighted_f1")
        print(
            f"{smk.wildcards.model} {split}: n={scores['n']}"
            + (f", weighted F1 {f1:.4f}" if f1 is not None else "")
        )


run(snakemake, main)  # noqa: F821
