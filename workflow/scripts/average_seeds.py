"""Rule `average_seeds`: one backbone x loss's probabilities, the mean over its seeds' predictions."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.evaluate.predictions import average_seeds_stage

    name = f"{smk.wildcards.backbone}/{smk.wildcards.loss}"
    average_seeds_stage(smk.input.seeds, smk.output.predictions, name)


run(snakemake, main)  # noqa: F821
