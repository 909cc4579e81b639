"""Rule `ensemble`: per backbone the loss best on validation, averaged over backbones and seeds."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.experiments.selection import ensemble_stage

    p, out = smk.params, smk.output
    ensemble_stage(
        p.members["val"], p.members["predictions"], smk.input.summary,
        out.spec, out.choice, out.predictions,
        backbones=p.backbones, losses=p.losses, select=p.select, threshold=p.threshold,
    )  # fmt: skip


run(snakemake, main)  # noqa: F821
