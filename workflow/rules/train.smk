# One training job per backbone x loss x seed (x fold): the model folder every command takes.


rule train:
    input:
        unpack(train_inputs),
    output:
        model="results/{scope}models/{backbone}/{loss}/seed_{seed}/model.keras",
        card="results/{scope}models/{backbone}/{loss}/seed_{seed}/model_card.json",
        metrics="results/{scope}models/{backbone}/{loss}/seed_{seed}/metrics.json",
        history="results/{scope}models/{backbone}/{loss}/seed_{seed}/history.csv",
        curves=shown(
            "results/{scope}models/{backbone}/{loss}/seed_{seed}/curves.png",
            "curves",
            "{backbone}",
            backbone="{backbone}",
            loss="{loss}",
            seed="{seed}",
            chain="{scope}models",
        ),
    log:
        "results/logs/{scope}train/{backbone}/{loss}/seed_{seed}.log",
    conda:
        ENV
    threads: MACHINE.threads
    resources:
        gpu=MACHINE.gpu_per_job,
        mem_mb=CFG.resources.mem_mb,
        runtime=CFG.resources.runtime,
    params:
        run=lambda w: plan.train_settings(CFG, w.backbone, w.loss, w.seed),
        fold=lambda w: plan.fold_of(w.scope),
        state_dir="results/.state/{scope}train/{backbone}/{loss}/seed_{seed}",
        gpu_locks=machine.GPU_LOCKS,
        keras_home="resources/keras",
        uses_imagenet=CFG.uses_imagenet(),
    script:
        "../scripts/train.py"
