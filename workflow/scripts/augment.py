"""Rule `augment`: the training rows oversampled to the per-class targets, augmented, in shards."""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run


def main(smk: Any) -> None:
    import numpy as np
    import pandas as pd

    from leukoscope._io import atomic_path
    from leukoscope.errors import DataError
    from leukoscope.preprocess.artifacts import augment_set, augmentation_plan
    from leukoscope.preprocess.augment import RandomAugment

    a = dict(smk.params.augment)
    summary = json.loads(Path(smk.input.summary).read_text(encoding="utf-8"))
    classes = summary["class_names"]
    index = pd.read_parquet(smk.input.crop_index)
    train = index[index["ok"] & (index["y"] >= 0)]
    fold = smk.params.fold
    if fold is not None:  # cv: this fold's training rows are the pool's other folds
        train = train[train["fold"] != fold]
    present = np.bincount(train["y"].to_numpy(np.int64), minlength=len(classes))
    if (present == 0).any():
        missing = classes[int(np.flatnonzero(present == 0)[0])]
        raise DataError(
            f"class {missing!r} has no readable training images",
            path=smk.input.crop_index,
            hint="see results/samples/check.json for the unreadable files",
        )
    plan = augmentation_plan(
        train["y"].to_numpy(np.int64), classes, a["target"], a["seed"], a["keep_originals"], a["enabled"]
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
        f"from {len(train)} images"
    )


run(snakemake, main)  # noqa: F821
