"""Rule `stats`: per-channel mean / std of the training set (the paper's standardisation)."""

from typing import Any

from leukoscope.workflow.script import run


def main(smk: Any) -> None:
    import numpy as np
    import pandas as pd

    from leukoscope._io import write_json
    from leukoscope.preprocess.artifacts import shard_statistics
    from leukoscope.preprocess.normalize import compute_mean_std

    if smk.params.images == "augmented":
        mean, std, n = shard_statistics([np.load(s, mmap_mode="r") for s in smk.input.shards])
    else:  # the original training images, each once
        rows = np.unique(pd.read_parquet(smk.input.index)["source"].to_numpy(np.int64))
        mean, std = compute_mean_std(np.load(smk.input.crop_images, mmap_mode="r"), rows)
        n = len(rows)
    write_json(
        smk.output.stats, {"mean": mean, "std": std, "n": n, "images": smk.params.images, "units": "[0, 1]"}
    )
    print(f"stats over {n} {smk.params.images} images: mean {mean}, std {std}")


run(snakemake, main)  # noqa: F821
