# One training job per backbone x loss x seed (x fold): the model folder every command takes.


rule train:
    input:
        unpack(train_inputs),
    output:
        model=P.model_file("model.keras"),
        card=P.model_file("model_card.json"),
        metrics=P.model_file("metrics.json"),
        history=P.model_file("history.csv"),
        curves=report(
            P.model_file("curves.png"),
            caption="../report/curves.rst",
            category="Training curves",
            subcategory="{backbone}",
            labels={
                "backbone": "{backbone}",
                "loss": "{loss}",
                "seed": "{seed}",
                "chain": "{scope}models",
            },
        ),
    log:
        log_file("{scope}train/{backbone}/{loss}/seed_{seed}"),
    conda:
        ENV
    threads: TRAIN_THREADS
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=CFG.resources.mem_mb,
        runtime=CFG.resources.runtime,
    params:
        run=lambda wildcards: P.train_settings(
            CFG, wildcards.backbone, wildcards.loss, wildcards.seed
        ),
        fold=lambda wildcards: P.fold_of(wildcards.scope),
        state_dir=P.STATE,
        gpu_locks=P.GPU_LOCKS,
        keras_home=P.KERAS_HOME,
        uses_imagenet=CFG.uses_imagenet(),
    script:
        "../scripts/train.py"
