"""Rule `augment`: the chain's training rows oversampled to the per-class targets, augmented, in shards."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.preprocess.stages import augment_stage

    i, p, o = smk.input, smk.params, smk.output
    augment_stage(i.crop_images, i.crop_index, i.summary, p.fold, p.augment, list(o.shards), o.index)


run(snakemake, main)  # noqa: F821
