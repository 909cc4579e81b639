"""Rule `tables`: Tables 1-3 beside the paper's published numbers (CSV + Markdown), with intervals.

Table 2 is on the chain's scored split (paper: the preliminary test, which also validated; heldout: the
preliminary test, untouched), with each loss's paired weighted-F1 difference from BCE; Table 3 is the
ensemble on the preliminary test. Beside them, where each training job's time went (timing).
"""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run


def _json(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def main(smk: Any) -> None:
    import pandas as pd

    from leukoscope.report.tables import write_paper_tables, write_table
    from leukoscope.report.timing import timing_notes, timing_table

    p = smk.params
    scores: dict[str, dict[str, Any]] = {}
    for split, files in p.scores.items():
        for model, path in files.items():
            scores.setdefault(model, {})[split] = _json(path)
    augmented = pd.read_parquet(smk.input.augmented)["label"].value_counts().to_dict()
    table2 = write_paper_tables(
        _json(smk.input.summary), _json(smk.input.choice), scores,
        {m: pd.read_parquet(f) for m, f in p.predictions.items()},
        {str(k): int(v) for k, v in augmented.items()}, smk.output,
        split=p.split, backbones=list(p.backbones), losses=list(p.losses),
        loss_settings=dict(p.loss_settings), select=p.select, threshold=float(p.threshold),
        bootstrap=int(p.bootstrap), bootstrap_seed=int(p.bootstrap_seed),
    )  # fmt: skip
    title = "Training time per job: first step (trace / compile) and steady images/s"
    timing = timing_table(dict(p.metrics))
    write_table(timing, smk.output.timing_csv, smk.output.timing_md, title, timing_notes())
    print(table2)


run(snakemake, main)  # noqa: F821
