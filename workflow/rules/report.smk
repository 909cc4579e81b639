# The paper's tables and figures (paper and heldout protocols), or the cross-validation summary (cv).


localrules:
    tables,
    figures,
    subjects,
    cv_summary,


rule tables:
    input:
        scores=files_in(paper_scores()),
        predictions=files_in(predictions()),
        summary=rules.samples.output.summary,
        augmented="results/augment/index.parquet",
        choice="results/ensemble/choice.json",
        metrics=files_in([seed_files("", m, "metrics.json") for m in MODELS]),
    output:
        **{
            f"{t}_csv": shown(f"results/tables/{t}.csv", t, table=t)
            for t in ("table1", "table2", "table3", "timing")
        },
        **{
            f"{t}_md": f"results/tables/{t}.md"
            for t in ("table1", "table2", "table3", "timing")
        },
    log:
        "results/logs/tables.log",
    conda:
        ENV
    params:
        scores=paper_scores(),
        predictions={m: f for m, f in predictions().items() if m != "ensemble"},
        split=CFG.scored_split,
        backbones=BACKBONES,
        losses=CFG.grid.losses,
        loss_settings=plan.canonical(CFG.losses),
        select=CFG.ensemble.select,
        threshold=CFG.evaluate.threshold,
        bootstrap=CFG.evaluate.bootstrap,
        bootstrap_seed=CFG.evaluate.bootstrap_seed,
        metrics={
            f"{m}/seed_{s}": f"{MODEL_DIR.format(scope='', model=m, seed=s)}/metrics.json"
            for m in MODELS
            for s in SEEDS
        },
    script:
        "../scripts/tables.py"


rule figures:
    input:
        scores=files_in(paper_scores()),
        histories=[f"{d}/history.csv" for d in first_seed_dirs().values()],
        predictions=files_in(predictions()),
        summary=rules.samples.output.summary,
    output:
        **{
            name: shown(f"results/figures/{file}.png", caption, figure=name)
            for name, file, caption in [
                *(
                    (f"curves_{b}", f"curves_{b}", "curves_backbone")
                    for b in BACKBONES
                ),
                ("f1_heatmap", "f1_heatmap", "f1_heatmap"),
                ("confusion", "confusion_matrices", "confusion"),
                ("roc", "roc", "roc"),
            ]
        },
    log:
        "results/logs/figures.log",
    conda:
        ENV
    params:
        files={
            "scores": paper_scores(),
            "histories": {m: f"{d}/history.csv" for m, d in first_seed_dirs().items()},
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
    conda:
        ENV
    params:
        predictions={m: f for m, f in predictions().items() if m != "ensemble"},
        threshold=CFG.evaluate.threshold,
        split=CFG.scored_split,
    script:
        "../scripts/subjects.py"


rule gradcam:
    """Grad-CAM panels of the ensemble's members on right and wrong cells of the scored split."""
    input:
        ensemble="results/ensemble/predictions.parquet",
        choice="results/ensemble/choice.json",
        summary=rules.samples.output.summary,
        models=[f"{d}/model.keras" for d in first_seed_dirs().values()],
        crops=files_in(scored_crops()),
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
        model_dirs=first_seed_dirs(),
        crops=scored_crops(),
        threshold=CFG.evaluate.threshold,
        split=CFG.scored_split,
        gpu_locks=machine.GPU_LOCKS,
    script:
        "../scripts/gradcam.py"


rule cv_summary:
    input:
        scores=files_in(cv_scores()),
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
    conda:
        ENV
    params:
        scores=cv_scores(),
        choices={
            plan.fold_of(scope): f"results/{scope}ensemble/choice.json"
            for scope in CFG.scopes
        },
    script:
        "../scripts/cv_summary.py"
