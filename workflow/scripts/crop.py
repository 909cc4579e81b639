"""Rule `crop`: one split's images cropped to the cell and resized, as one memory-mappable .npy."""

import json
from pathlib import Path
from typing import Any

from leukoscope.workflow.script import run, threads


def main(smk: Any) -> None:
    from leukoscope._io import atomic_path
    from leukoscope.config import PreprocessConfig
    from leukoscope.data.samples import read_sample_sheet
    from leukoscope.preprocess.artifacts import crop_images

    sheet = read_sample_sheet(smk.input.sheet)
    rows = sheet[sheet["part"] == smk.wildcards.part]
    summary = json.loads(Path(smk.input.summary).read_text(encoding="utf-8"))
    settings = dict(smk.params.preprocess) | {"crop": summary["preprocess"]["crop"]}  # auto resolved
    cfg = PreprocessConfig(**settings)
    index = crop_images(rows, cfg, smk.output.images, workers=threads(smk))
    with atomic_path(smk.output.index) as tmp:
        index.to_parquet(tmp, index=False)
    bad = int((~index["ok"]).sum())
    part = smk.wildcards.part
    print(f"crop {part}: {len(index)} images at {cfg.image_size} px ({cfg.crop}), {bad} unreadable")


run(snakemake, main)  # noqa: F821
