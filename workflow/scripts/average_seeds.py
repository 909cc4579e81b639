"""Rule `average_seeds`: one backbone x loss's probabilities, the mean over its seeds' predictions."""

from typing import Any

from leukoscope.workflow.script import run


def main(smk: Any) -> None:
    import pandas as pd

    from leukoscope._io import atomic_path
    from leukoscope.evaluate.predictions import class_names_of, mean_probabilities

    tables = [pd.read_parquet(p) for p in smk.input.seeds]
    averaged = mean_probabilities(tables, class_names_of(tables[0]))
    with atomic_path(smk.output.predictions) as tmp:
        averaged.to_parquet(tmp, index=False)
    print(
        f"{smk.wildcards.backbone}/{smk.wildcards.loss}: mean of {len(tables)} seed(s), {len(averaged)} rows"
    )


run(snakemake, main)  # noqa: F821
