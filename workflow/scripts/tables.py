"""Rule `tables`: Tables 1-3 beside the paper's numbers, with intervals, and the training time table."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.report.tables import tables_stage

    p, i = smk.params, smk.input
    tables_stage(
        p.scores, p.predictions, i.summary, i.choice, i.augmented, p.metrics, dict(smk.output.items()),
        split=p.split, backbones=p.backbones, losses=p.losses, loss_settings=p.loss_settings,
        select=p.select, threshold=p.threshold, bootstrap=p.bootstrap, bootstrap_seed=p.bootstrap_seed,
    )  # fmt: skip


run(snakemake, main)  # noqa: F821
