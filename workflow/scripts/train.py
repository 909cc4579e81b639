"""Rule `train`: one backbone x loss x seed on the augmented set, validated on the chain's val split."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.train.artifacts import train_stage

    i, p = smk.input, smk.params
    train_stage(
        p.run, shards=i.shards, index=i.index, val_images=i.val_images, val_index=i.val_index,
        stats=i.stats, samples_summary=i.summary, fold=p.fold, model_out=smk.output.model,
        state_dir=p.state_dir, keras_home=p.keras_home if p.uses_imagenet else None, gpu=smk.gpu,
        threads=smk.threads,
    )  # fmt: skip


run(snakemake, main, device=True)  # noqa: F821
