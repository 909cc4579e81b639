"""Rule `augment`: the chain's training rows oversampled to the per-class targets, augmented, in shards."""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run


def main(smk: Any) -> None:
    import numpy as np
    import pandas as pd

    from leukoscope._io import atomic_path
    from leukoscope.data.samples import scope_rows
    from leukoscope.preprocess.artifacts import augment_set, augmentation_plan, readable_training_rows
    from leukoscope.preprocess.augment import RandomAugment
    from leukoscope.preprocess.balance import resolve_target

    a = dict(smk.params.augment)
    summary = json.loads(Path(smk.input.summary).read_text(encoding="utf-8"))
    classes = summary["class_names"]
    index = pd.read_parquet(smk.input.crop_index)
    train = readable_training_rows(scope_rows(index, "train", smk.params.fold), classes, smk.input.crop_index)
    counts = np.bincount(train["y"].to_numpy(np.int64), minlength=len(classes))
    target, why = resolve_target(
        a["target"], classes, counts.tolist(), protocol=a["protocol"], total=a["total"]
    )
    plan = augmentation_plan(
        train["y"].to_numpy(np.int64), classes, target, a["seed"], a["keep_originals"], a["enabled"]
    )
    plan["source"] = train["row"].to_numpy(np.int64)[plan["source"].to_numpy()]  # rows of the crop file
    plan["label"] = [classes[i] for i in plan["y"]]
    augment = RandomAugment(
        a["hflip"], a["vflip"], float(a["rotation"]), float(a["clahe_p"]), a["clahe_grid"]
    )
    images = np.load(smk.input.crop_images, mmap_mode="r")
    out = augment_set(images, plan, augment, a["seed"], list(smk.output.shards))
    with atomic_path(smk.output.index) as tmp:
        out.to_parquet(tmp, index=False)
    counts = out["label"].value_counts().to_dict()
    print(
        f"augment: {len(out)} samples {counts} ({int(out['augmented'].sum())} augmented) "
        f"from {len(train)} images; target: {why}"
    )


run(snakemake, main)  # noqa: F821
