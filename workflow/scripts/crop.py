"""Rule `crop`: one split's images cropped to the cell and resized, as one memory-mappable .npy."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.preprocess.stages import crop_stage

    i, o = smk.input, smk.output
    crop_stage(i.sheet, i.summary, smk.wildcards.part, smk.params.preprocess, o.images, o.index, smk.threads)


run(snakemake, main)  # noqa: F821
