"""Rule `samples`: the sample sheet, its summary (crop and augment target resolved) and the data check."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.preprocess.stages import samples_stage

    i, o = smk.input, smk.output
    samples_stage(
        i.dataset, smk.params.settings, smk.params.augment, o.sheet, o.summary, o.check, smk.threads
    )


run(snakemake, main)  # noqa: F821
