"""Rule `cv_summary`: mean and std over folds of every model's and the ensemble's outer-fold scores."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.report.cv import cv_summary_stage

    out = smk.output
    cv_summary_stage(smk.params.scores, smk.params.choices, out.summary, out.csv, out.md, out.figure)


run(snakemake, main)  # noqa: F821
