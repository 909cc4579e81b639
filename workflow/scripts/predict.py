"""Rule `predict`: one model's probabilities for every split it is scored or submitted on, in one table."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.evaluate.predictions import predict_stage

    crops = {part: (smk.input[f"{part}_index"], smk.input[f"{part}_images"]) for part in smk.params.parts}
    predict_stage(smk.input.model, crops, smk.output.predictions, fold=smk.params.fold,
                  batch_size=smk.params.batch_size)  # fmt: skip


run(snakemake, main, device=True)  # noqa: F821
