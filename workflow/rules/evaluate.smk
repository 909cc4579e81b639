# Predict every split once per model and seed, average the seeds, score the labelled splits (with
# subject-level bootstrap intervals), build the ensemble (chosen on validation), write the submission.


rule predict:
    input:
        unpack(predict_inputs),
    output:
        predictions="results/{scope}models/{backbone}/{loss}/seed_{seed}/predictions.parquet",
    log:
        "results/logs/{scope}predict/{backbone}/{loss}/seed_{seed}.log",
    conda:
        ENV
    threads: MACHINE.threads
    resources:
        gpu=MACHINE.gpu_per_job,
        mem_mb=CFG.resources.mem_mb,
    params:
        parts=plan.predict_parts(CFG),
        fold=lambda w: plan.fold_of(w.scope),
        batch_size=CFG.evaluate.batch_size,
        gpu_locks=machine.GPU_LOCKS,
    script:
        "../scripts/predict.py"


rule average_seeds:
    """A backbone x loss's probabilities: the mean over its seeds (one seed: that seed's)."""
    input:
        seeds=lambda w: seed_files(w.scope, f"{w.backbone}/{w.loss}"),
    output:
        predictions="results/{scope}models/{backbone}/{loss}/predictions.parquet",
    log:
        "results/logs/{scope}average_seeds/{backbone}/{loss}.log",
    localrule: True
    conda:
        ENV
    script:
        "../scripts/average_seeds.py"


rule evaluate:
    input:
        predictions="results/{scope}{model}/predictions.parquet",
        seeds=seed_predictions,
        summary=rules.samples.output.summary,
    output:
        scores=expand("results/{{scope}}{{model}}/eval/{split}.json", split=CFG.eval_splits),
    log:
        "results/logs/{scope}evaluate/{model}.log",
    localrule: True
    conda:
        ENV
    params:
        splits=CFG.eval_splits,
        threshold=CFG.evaluate.threshold,
        seeds=SEEDS,
        bootstrap=CFG.evaluate.bootstrap,
        bootstrap_seed=CFG.evaluate.bootstrap_seed,
    script:
        "../scripts/evaluate.py"


rule ensemble:
    input:
        members=lambda w: files_in(member_files(w.scope)),
        summary=rules.samples.output.summary,
    output:
        spec="results/{scope}ensemble/ensemble.json",
        choice="results/{scope}ensemble/choice.json",
        predictions="results/{scope}ensemble/predictions.parquet",
    log:
        "results/logs/{scope}ensemble.log",
    localrule: True
    conda:
        ENV
    params:
        members=lambda w: member_files(w.scope),
        backbones=BACKBONES,
        losses=CFG.grid.losses,
        select=CFG.ensemble.select,
        threshold=CFG.evaluate.threshold,
    script:
        "../scripts/ensemble.py"


rule submission:
    input:
        predictions="results/ensemble/predictions.parquet",
        spec="results/ensemble/ensemble.json",
    output:
        "results/ensemble/isbi_submission.zip",
    log:
        "results/logs/submission.log",
    localrule: True
    conda:
        ENV
    script:
        "../scripts/submission.py"
