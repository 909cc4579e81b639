"""Rule `subjects`: accuracy and errors per subject of the ensemble and its members, worst first."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.report.subjects import subjects_stage

    i, p = smk.input, smk.params
    subjects_stage(i.ensemble, i.choice, i.summary, p.predictions, smk.output.csv, smk.output.md,
                   threshold=p.threshold, split=p.get("split", "auto"))  # fmt: skip


run(snakemake, main)  # noqa: F821
