# The paper's tables and figures (paper and heldout protocols), or the cross-validation summary (cv).


# {split: {model: eval json}} (paper, heldout); {fold: {model: eval json}} (cv); first seeds' folders
PAPER_SCORES = {split: scores("", split) for split in CFG.eval_splits}
CV_SCORES = {plan.fold_of(scope): scores(scope, "test") for scope in CFG.scopes}
FIRST_SEED = {m: MODEL_DIR.format(scope="", model=m, seed=SEEDS[0]) for m in MODELS}
METRICS = {
    f"{m}/seed_{s}": f"{MODEL_DIR.format(scope='', model=m, seed=s)}/metrics.json"
    for m in MODELS
    for s in SEEDS
}
TABLES = ("table1", "table2", "table3", "timing")


rule tables:
    input:
        scores=files_in(PAPER_SCORES),
        predictions=files_in(predictions()),
        summary=rules.samples.output.summary,
        augmented="results/augment/index.parquet",
        choice="results/ensemble/choice.json",
        metrics=files_in(METRICS),
    output:
        **{f"{t}_csv": shown(f"results/tables/{t}.csv", t, table=t) for t in TABLES},
        **{f"{t}_md": f"results/tables/{t}.md" for t in TABLES},
    log:
        "results/logs/tables.log",
    localrule: True
    conda:
        ENV
    params:
        scores=PAPER_SCORES,
        predictions=predictions(ensemble=False),
        split=CFG.scored_split,
        backbones=BACKBONES,
        losses=CFG.grid.losses,
        loss_settings=plan.canonical(CFG.losses),
        select=CFG.ensemble.select,
        threshold=CFG.evaluate.threshold,
        bootstrap=CFG.evaluate.bootstrap,
        bootstrap_seed=CFG.evaluate.bootstrap_seed,
        metrics=METRICS,
    script:
        "../scripts/tables.py"


rule figures:
    input:
        scores=files_in(PAPER_SCORES),
        histories=[f"{d}/history.csv" for d in FIRST_SEED.values()],
        predictions=files_in(predictions()),
        summary=rules.samples.output.summary,
    output:
        **{
            f"curves_{b}": shown(f"results/figures/curves_{b}.png", "curves_backbone", figure=f"curves_{b}")
            for b in BACKBONES
        },
        f1_heatmap=shown("results/figures/f1_heatmap.png", "f1_heatmap", figure="f1_heatmap"),
        confusion=shown("results/figures/confusion_matrices.png", "confusion", figure="confusion"),
        roc=shown("results/figures/roc.png", "roc", figure="roc"),
    log:
        "results/logs/figures.log",
    localrule: True
    conda:
        ENV
    params:
        files={
            "scores": PAPER_SCORES,
            "histories": {m: f"{d}/history.csv" for m, d in FIRST_SEED.items()},
            "predictions": predictions(),
        },
        split=CFG.scored_split,
        backbones=BACKBONES,
        losses=CFG.grid.losses,
    script:
        "../scripts/figures.py"


rule subjects:
    """Accuracy and errors per subject (patient) of the ensemble and its members, worst first."""
    input:
        ensemble="results/ensemble/predictions.parquet",
        choice="results/ensemble/choice.json",
        summary=rules.samples.output.summary,
        members=files_in(predictions()),
    output:
        csv=shown("results/tables/subjects.csv", "subjects", table="per subject"),
        md="results/tables/subjects.md",
    log:
        "results/logs/subjects.log",
    localrule: True
    conda:
        ENV
    params:
        predictions=predictions(ensemble=False),
        threshold=CFG.evaluate.threshold,
        split=CFG.scored_split,
    script:
        "../scripts/subjects.py"


rule gradcam:
    """Grad-CAM panels of the ensemble's members on right and wrong cells of the scored split."""
    input:
        **crop_files(CFG.scored_split),
        ensemble="results/ensemble/predictions.parquet",
        choice="results/ensemble/choice.json",
        summary=rules.samples.output.summary,
        models=[f"{d}/model.keras" for d in FIRST_SEED.values()],
    output:
        **{
            f"gradcam_{b}": shown(
                f"results/figures/gradcam_{b}.png",
                "gradcam",
                figure=f"Grad-CAM {b}",
            )
            for b in BACKBONES
        },
    log:
        "results/logs/gradcam.log",
    conda:
        ENV
    threads: MACHINE.threads
    resources:
        gpu=MACHINE.gpu_per_job,
        mem_mb=CFG.resources.mem_mb,
    params:
        model_dirs=FIRST_SEED,
        threshold=CFG.evaluate.threshold,
        split=CFG.scored_split,
        gpu_locks=machine.GPU_LOCKS,
    script:
        "../scripts/gradcam.py"


rule cv_summary:
    input:
        scores=files_in(CV_SCORES),
        choices=[f"results/{scope}ensemble/choice.json" for scope in CFG.scopes],
    output:
        summary="results/cv/summary.json",
        csv=shown(
            "results/tables/cv_summary.csv",
            "cv_summary",
            table="cross-validation",
        ),
        md="results/tables/cv_summary.md",
        figure=shown(
            "results/figures/cv_f1.png",
            "cv_f1",
            figure="cross-validation F1",
        ),
    log:
        "results/logs/cv_summary.log",
    localrule: True
    conda:
        ENV
    params:
        scores=CV_SCORES,
        choices={plan.fold_of(scope): f"results/{scope}ensemble/choice.json" for scope in CFG.scopes},
    script:
        "../scripts/cv_summary.py"
