"""Rule `stats`: per-channel mean / std of the training set (the paper's standardisation)."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.preprocess.stages import stats_stage

    i = smk.input
    stats_stage(smk.params.images, list(i.shards), i.index, i.crop_images, smk.output.stats)


run(snakemake, main)  # noqa: F821
