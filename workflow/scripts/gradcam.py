"""Rule `gradcam`: one Grad-CAM panel per ensemble member (its first seed's model) on the scored split."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.report.gradcam import gradcam_stage

    i, p = smk.input, smk.params
    gradcam_stage(
        i.ensemble, i.choice, i.summary, p.model_dirs, i.crop_images, i.crop_index, dict(smk.output.items()),
        threshold=p.threshold, per_class=p.get("per_class", 4), split=p.get("split", "auto"),
    )  # fmt: skip


run(snakemake, main, device=True)  # noqa: F821
