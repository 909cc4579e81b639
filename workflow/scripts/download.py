"""Rule `download` (local): the dataset in place, verified; its record written last, so a failed download
is never taken as complete (`leukoscope data fetch` is the same outside the workflow)."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.data.download import download_stage

    download_stage(smk.params.dataset, smk.output[0])


run(snakemake, main)  # noqa: F821
