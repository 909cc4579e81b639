"""Rule `gradcam`: one Grad-CAM panel per ensemble member (the first seed's model) on the scored split.

input:  ensemble  results/ensemble/predictions.parquet (picks the cells: right/wrong per class)
        choice    results/ensemble/choice.json ("members": ["<backbone>/<loss>", ...])
        summary   results/samples/summary.json (positive_class)
        + the files in params.model_dirs and params.crops (so the rule waits for them)
params: model_dirs  {"<backbone>/<loss>": "results/models/<backbone>/<loss>/seed_<first>"}, all candidates
        crops       {split: {"index": "results/crop/<part>.parquet", "images": "results/crop/<part>.npy"}}
                    for each split the panel may show (val -> the val part, or pool under cv; test)
        threshold   P(positive) >= threshold -> positive (two classes)
        per_class   cells per class and outcome (columns of the grid); optional, default 4
        split       "auto" (the labelled test split, else val) or a split name; optional
        gpu_locks   the GPU lock folder, as for predict; optional (without it the job runs on the CPU)
output: gradcam_<backbone>  one PNG per backbone (each backbone has exactly one member)
"""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run


def main(smk: Any) -> None:
    import numpy as np
    import pandas as pd

    from leukoscope.evaluate.predictions import class_names_of
    from leukoscope.report import gradcam as G
    from leukoscope.report import paper
    from leukoscope.report.subjects import scored_split
    from leukoscope.report.tables import split_name

    choice = json.loads(Path(smk.input.choice).read_text(encoding="utf-8"))
    summary = json.loads(Path(smk.input.summary).read_text(encoding="utf-8"))
    positive = summary.get("positive_class")
    ensemble = pd.read_parquet(smk.input.ensemble)
    classes = class_names_of(ensemble)
    split = scored_split(ensemble, getattr(smk.params, "split", "auto"))
    per_class = int(getattr(smk.params, "per_class", 4))
    cells = G.pick_cells(ensemble, split, per_class, float(smk.params.threshold), positive)
    crop = smk.params.crops[split]
    images = G.crops_of(
        pd.read_parquet(crop["index"]), np.load(crop["images"], mmap_mode="r"), cells["path"].tolist()
    )
    where = split_name(summary["protocol"], split)
    counts = cells["outcome"].value_counts().to_dict()
    for member in choice["members"]:
        backbone, loss = member.split("/", 1)
        name = f"{paper.BACKBONE_LABELS.get(backbone, backbone)} ({paper.LOSS_LABELS.get(loss, loss)})"
        title = (
            f"Grad-CAM, {name}, {where}: up to {per_class} cells per class the ensemble called right / wrong"
        )
        out = smk.output[f"gradcam_{backbone}"]
        done = G.gradcam_panel(
            smk.params.model_dirs[member], cells, images, classes, per_class, out, title, positive
        )
        agree = int((done["member_predicted"] == done["predicted"]).sum())
        print(f"{member}: {out} ({counts}; the member agrees with the ensemble on {agree}/{len(done)})")


run(snakemake, main, device=True)  # noqa: F821
