"""Rule `evaluate`: one model's (or the ensemble's) scores on each labelled split, one JSON per split."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.evaluate.predictions import evaluate_stage

    p = smk.params
    evaluate_stage(
        smk.input.predictions, dict(zip(p.seeds, smk.input.seeds, strict=False)), smk.input.summary,
        dict(zip(p.splits, smk.output.scores, strict=True)), smk.wildcards.model,
        threshold=p.threshold, bootstrap=p.bootstrap, bootstrap_seed=p.bootstrap_seed,
    )  # fmt: skip


run(snakemake, main)  # noqa: F821
