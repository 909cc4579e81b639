# Predict every split once per model and seed, average the seeds, score the labelled splits (with
# subject-level bootstrap intervals), build the ensemble (chosen on validation), write the submission.


localrules:
    average_seeds,
    evaluate,
    ensemble,
    submission,


rule predict:
    input:
        unpack(predict_inputs),
    output:
        predictions=P.SEED_PREDICTIONS,
    log:
        log_file("{scope}predict/{backbone}/{loss}/seed_{seed}"),
    conda:
        ENV
    threads: TRAIN_THREADS
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=CFG.resources.mem_mb,
    params:
        parts=P.predict_parts(CFG),
        fold=lambda wildcards: P.fold_of(wildcards.scope),
        batch_size=CFG.evaluate.batch_size,
        gpu_locks=P.GPU_LOCKS,
    script:
        "../scripts/predict.py"


rule average_seeds:
    """A backbone x loss's probabilities: the mean over its seeds (one seed: that seed's)."""
    input:
        seeds=lambda wildcards: P.seed_prediction_files(
            CFG, wildcards.scope, wildcards.backbone, wildcards.loss
        ),
    output:
        predictions=P.PREDICTIONS.replace("{model}", "models/{backbone}/{loss}"),
    log:
        log_file("{scope}average_seeds/{backbone}/{loss}"),
    conda:
        ENV
    script:
        "../scripts/average_seeds.py"


rule evaluate:
    input:
        predictions=P.PREDICTIONS,
        seeds=seed_predictions,
        summary=P.SAMPLES_SUMMARY,
    output:
        scores=expand(P.EVAL, split=CFG.eval_splits, allow_missing=True),
    log:
        log_file("{scope}evaluate/{model}"),
    conda:
        ENV
    params:
        splits=CFG.eval_splits,
        threshold=CFG.evaluate.threshold,
        seeds=CFG.grid.seeds,
        bootstrap=CFG.evaluate.bootstrap,
        bootstrap_seed=CFG.evaluate.bootstrap_seed,
    script:
        "../scripts/evaluate.py"


rule ensemble:
    input:
        members=lambda wildcards: nested_files(member_files(wildcards.scope)),
        summary=P.SAMPLES_SUMMARY,
    output:
        spec=P.ENSEMBLE,
        choice=P.ENSEMBLE_CHOICE,
        predictions=P.PREDICTIONS.replace("{model}", "ensemble"),
    log:
        log_file("{scope}ensemble"),
    conda:
        ENV
    params:
        members=lambda wildcards: member_files(wildcards.scope),
        model_dirs=lambda wildcards: {
            f"{b}/{l}": P.seed_dirs(CFG, wildcards.scope, b, l) for b, l in MODELS
        },
        backbones=BACKBONES,
        losses=list(CFG.grid.losses),
        select=CFG.ensemble.select,
        threshold=CFG.evaluate.threshold,
    script:
        "../scripts/ensemble.py"


rule submission:
    input:
        predictions=P.PREDICTIONS.format(scope="", model="ensemble"),
        spec=P.ENSEMBLE.format(scope=""),
    output:
        P.SUBMISSION,
    log:
        log_file("submission"),
    conda:
        ENV
    script:
        "../scripts/submission.py"
