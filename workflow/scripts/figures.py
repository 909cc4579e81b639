"""Rule `figures`: training curves, the F1 heat map, confusion matrices and ROC curves on the scored split."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.report.figures import figures_stage

    p = smk.params
    figures_stage(p.files, smk.input.summary, dict(smk.output.items()), split=p.split, backbones=p.backbones,
                  losses=p.losses)  # fmt: skip


run(snakemake, main)  # noqa: F821
