"""Rule `submission`: the ensemble's final-test calls in the ISBI 2019 challenge's format (a zip)."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.experiments.submission import submission_stage

    submission_stage(smk.input.predictions, smk.input.spec, smk.output[0])


run(snakemake, main)  # noqa: F821
