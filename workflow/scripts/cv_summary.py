"""Rule `cv_summary`: mean and std over folds of every model's and the ensemble's outer-fold scores."""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run


def main(smk: Any) -> None:
    from leukoscope._io import write_json
    from leukoscope.report import cv, figures, tables

    scores = {
        int(fold): {m: json.loads(Path(p).read_text(encoding="utf-8")) for m, p in files.items()}
        for fold, files in smk.params.scores.items()
    }
    chosen = {
        int(f): json.loads(Path(p).read_text(encoding="utf-8"))["chosen"]
        for f, p in smk.params.choices.items()
    }
    summary = cv.summarise(scores, chosen)
    write_json(smk.output.summary, summary)
    table = cv.summary_table(summary)
    tables.write_table(
        table,
        smk.output.csv,
        smk.output.md,
        f"{summary['folds']}-fold cross-validation",
        [
            "Mean and standard deviation (%) over the outer folds (each fold's held-out subjects, "
            "scored only); early stopping and the choice of the ensemble's members used an inner "
            "validation split of the other folds' subjects, so no row is selected on what it is scored on.",
        ],
    )
    figures.cv_f1(cv.per_fold_frame(summary), smk.output.figure, "weighted F1 per fold")
    print(tables.markdown(table, "cross-validation", []))


run(snakemake, main)  # noqa: F821
