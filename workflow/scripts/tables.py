"""Rule `tables`: Tables 1-3 beside the paper's published numbers, and the jobs' timing (CSV + Markdown)."""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run


def _json(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def main(smk: Any) -> None:
    import pandas as pd

    from leukoscope.report import tables as T

    summary = _json(smk.input.summary)
    choice = _json(smk.input.choice)
    by_model: dict[str, dict[str, Any]] = {}
    for split, files in smk.params.scores.items():
        for model, path in files.items():
            by_model.setdefault(model, {})[split] = _json(path)
    augmented = pd.read_parquet(smk.input.augmented)["label"].value_counts().to_dict()
    out = smk.output

    t1 = T.table1(summary, {str(k): int(v) for k, v in augmented.items()})
    T.write_table(
        t1,
        out.table1_csv,
        out.table1_md,
        "Table 1: images per split and class",
        [
            "Ours: this run's sample sheet (after dropping files identical to one in an earlier split) "
            "and the augment stage's oversampled training set; the paper's: the C-NMC 2019 data "
            "(73 subjects in 3 folds).",
            *summary.get("notes", []),
        ],
    )

    t2, split = T.table2(by_model, list(smk.params.backbones), list(smk.params.losses), choice["chosen"])
    n = by_model["ensemble"].get(split, {}).get("n", 0)
    T.write_table(
        t2,
        out.table2_csv,
        out.table2_md,
        "Table 2: weighted F1 (%) per loss and backbone",
        T.table2_notes(split, n, choice["chosen"], smk.params.select),
    )

    val = by_model["ensemble"].get("val", {})
    t3 = T.table3(val)
    positive = summary.get("positive_class")
    T.write_table(
        t3,
        out.table3_csv,
        out.table3_md,
        "Table 3: the ensemble on validation",
        [
            f"Validation split (n = {val.get('n', 0)}); precision, recall and F1 of the positive class "
            f"({positive}), as in the paper (its F1 88.82 = the harmonic mean of 82.73 and 95.89).",
            "The validation split also chose the ensemble's members, so its scores here are optimistic.",
        ],
    )
    from leukoscope.report.timing import timing_notes, timing_table

    T.write_table(
        timing_table(dict(smk.params.metrics)),
        out.timing_csv,
        out.timing_md,
        "Training time per job: first step (trace / compile) and steady images/s",
        timing_notes(),
    )
    print(T.markdown(t2, "Table 2", []))


run(snakemake, main)  # noqa: F821
