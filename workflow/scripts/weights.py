"""Rule `weights` (local): a backbone's ImageNet notop weights fetched once into `resources/keras/`."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.models.weights import fetch_weights

    fetch_weights(smk.wildcards.backbone, smk.params.keras_home, record_out=smk.output[0])


run(snakemake, main)  # noqa: F821
