"""Rule `subjects`: accuracy and errors per subject of the ensemble and its members, worst first.

input:  ensemble  results/ensemble/predictions.parquet
        choice    results/ensemble/choice.json (its "members" are read at run time)
        summary   results/samples/summary.json (positive_class)
        + every file in params.predictions (so the rule waits for them)
params: predictions  {"<backbone>/<loss>": ".../predictions.parquet"} for every candidate
        threshold    P(positive) >= threshold -> positive (two classes)
        split        "auto" (the labelled test split, else val) or a split name; optional
output: csv, md
"""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run


def main(smk: Any) -> None:
    import pandas as pd

    from leukoscope.report import subjects as S
    from leukoscope.report.tables import split_name, write_table

    choice = json.loads(Path(smk.input.choice).read_text(encoding="utf-8"))
    summary = json.loads(Path(smk.input.summary).read_text(encoding="utf-8"))
    ensemble = pd.read_parquet(smk.input.ensemble)
    split = S.scored_split(ensemble, getattr(smk.params, "split", "auto"))
    members = {m: pd.read_parquet(smk.params.predictions[m]) for m in choice["members"]}
    where = split_name(summary.get("protocol", ""), split)
    frame, title, notes = S.subject_table(
        ensemble, members, split, float(smk.params.threshold), summary.get("positive_class"), where
    )
    write_table(frame, smk.output.csv, smk.output.md, title, notes)
    print(f"{title}: {len(frame)} rows")


run(snakemake, main)  # noqa: F821
