"""Rule `submission`: the ensemble's final-test calls in the ISBI 2019 challenge's format (a zip)."""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run


def main(smk: Any) -> None:
    import pandas as pd

    from leukoscope.evaluate.metrics import decide
    from leukoscope.evaluate.predictions import class_names_of, prob_columns
    from leukoscope.experiments.submission import labels_to_01, write_isbi_submission

    spec = json.loads(Path(smk.input.spec).read_text(encoding="utf-8"))
    table = pd.read_parquet(smk.input.predictions)
    final = table[table["split"] == "final"]
    classes = class_names_of(table)
    positive = spec.get("positive_class") or classes[-1]
    probs = final[prob_columns(classes)].fillna(0.0).to_numpy()
    pred = decide(probs, float(spec.get("threshold", 0.5)), classes.index(positive)) if len(final) else []
    labels = [classes[i] for i in pred]
    write_isbi_submission(final["path"].tolist(), labels_to_01(labels, positive), smk.output[0])
    print(
        f"ISBI submission: {len(final)} final-test images, "
        f"{sum(1 for x in labels if x == positive)} called {positive}"
    )


run(snakemake, main)  # noqa: F821
