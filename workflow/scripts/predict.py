"""Rule `predict`: one model's probabilities for every split it is scored or submitted on, in one table."""

from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run

ROLE = {"val": "val", "test": "test", "final": "final"}  # crop file -> split (paper, heldout)


def main(smk: Any) -> None:
    import numpy as np
    import pandas as pd

    from leukoscope._io import atomic_path
    from leukoscope.data.samples import scope_rows
    from leukoscope.evaluate.predictions import prediction_table
    from leukoscope.infer.predictor import load_predictor

    predictor = load_predictor(Path(smk.input.model).parent)  # what `leukoscope predict` runs
    predictor.batch_size = int(smk.params.batch_size)
    predict, card = predictor.predict_arrays, predictor.card
    print(f"predict with {predictor.model_id} on {predictor.backend} ({predictor.precision})")
    tables = []
    for part in smk.params.parts:
        index = pd.read_parquet(smk.input[f"{part}_index"])
        images = np.load(smk.input[f"{part}_images"], mmap_mode="r")
        # cv: the pool's rows of this fold are its validation (inner) and test (outer fold) images
        roles = ("val", "test") if part == "pool" else (ROLE[part],)
        for role in roles:
            rows = scope_rows(index, role, smk.params.fold) if part == "pool" else index
            rows_at = rows["row"].to_numpy(np.int64)
            probs = predict(images[rows_at]) if len(rows) else np.zeros((0, card.num_classes))
            tables.append(prediction_table(rows, probs, card.class_names, role))
            print(f"predict {role}: {len(rows)} images")
    with atomic_path(smk.output.predictions) as tmp:
        pd.concat(tables, ignore_index=True).to_parquet(tmp, index=False)


run(snakemake, main, device=True)  # noqa: F821
