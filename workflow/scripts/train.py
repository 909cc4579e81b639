"""Rule `train`: one backbone x loss x seed on the augmented set, validated on the chain's validation split.

Threads, the GPU and KERAS_HOME are settled before TensorFlow is imported; the resume state lives in
`params.state_dir`, outside the declared outputs (Snakemake deletes those when a job fails), so a
restarted job continues from its last complete epoch.
"""

import json
import os
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run, threads


def main(smk: Any) -> None:
    gpu = smk.gpu
    if smk.params.uses_imagenet:
        os.environ["KERAS_HOME"] = str(Path(smk.params.keras_home).absolute())  # the weights rule's cache

    import pandas as pd

    from leukoscope.config import RunConfig
    from leukoscope.data.samples import scope_rows
    from leukoscope.train.artifacts import class_counts_for, load_fit_inputs
    from leukoscope.train.fit import fit_inputs

    settings = json.loads(json.dumps(dict(smk.params.run)))
    settings["train"].update(state_dir=smk.params.state_dir, progress=False)
    summary = json.loads(Path(smk.input.summary).read_text(encoding="utf-8"))
    settings["preprocess"]["crop"] = summary["preprocess"]["crop"]  # `auto` resolved by the samples rule
    counts_from = settings["loss"].pop("class_counts_from", None)
    out = Path(smk.output.model).parent
    cfg = RunConfig.from_dict(settings | {"out": str(out)})
    val_rows = scope_rows(pd.read_parquet(smk.input.val_index), "val", smk.params.fold)
    inputs = load_fit_inputs(
        shards=list(smk.input.shards),
        index_path=smk.input.index,
        val_images=smk.input.val_images,
        val_rows=val_rows,
        stats_path=smk.input.stats,
        samples_summary=summary,
        preprocess=cfg.preprocess,
    )
    if counts_from is not None:  # weighted BCE's W_i = N / (c n_i): the original or the augmented counts
        cfg.loss.params["class_counts"] = class_counts_for(inputs, smk.input.index, counts_from)
    where = f"GPU {gpu}" if gpu is not None else f"CPU, {threads(smk)} threads"
    print(
        f"train {cfg.model.backbone} / {cfg.loss.name} / seed {cfg.train.seed}: "
        f"{len(inputs.train)} samples, {len(inputs.val)} val ({where})"
    )
    if counts_from is not None:
        counts = cfg.loss.params["class_counts"]
        print(f"{cfg.loss.name}: class counts of the {counts_from} training set {counts}")
    fit_inputs(inputs, cfg, out)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    print(
        f"best epoch {metrics.get('epoch')}: "
        f"validation weighted F1 {metrics.get('weighted_f1', float('nan')):.4f}"
    )
    timing = metrics.get("timing")
    if timing:  # where the job's time went (also in the report's timing table)
        steady = timing.get("steady_images_per_s")
        print(
            f"timing: first step (trace / compile) {timing['first_step_s']:.1f} s, steady "
            f"{'n/a' if steady is None else f'{steady:.1f}'} images/s over {timing['epochs_timed']} "
            f"epoch(s), fit {timing['fit_s']:.0f} s"
        )


run(snakemake, main, device=True)  # noqa: F821
