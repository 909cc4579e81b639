# The paper's tables and figures (paper and heldout protocols), or the cross-validation summary (cv).


localrules:
    tables,
    figures,
    subjects,
    cv_summary,


rule tables:
    input:
        scores=nested_files(paper_scores()),
        predictions=nested_files(model_predictions()),
        summary=P.SAMPLES_SUMMARY,
        augmented=P.AUGMENT_INDEX.format(scope=""),
        choice=P.ENSEMBLE_CHOICE.format(scope=""),
        metrics=[
            P.model_file("metrics.json", "", b, l, s)
            for b, l in MODELS
            for s in CFG.grid.seeds
        ],
    output:
        **{
            f"{t}_csv": report(
                P.TABLE.format(table=t, ext="csv"),
                caption=f"../report/{t}.rst",
                category="Tables",
                labels={"table": t},
            )
            for t in P.TABLES
        },
        **{f"{t}_md": P.TABLE.format(table=t, ext="md") for t in P.TABLES},
        timing_csv=report(
            P.TABLE.format(table="timing", ext="csv"),
            caption="../report/timing.rst",
            category="Tables",
            labels={"table": "timing"},
        ),
        timing_md=P.TABLE.format(table="timing", ext="md"),
    log:
        log_file("tables"),
    conda:
        ENV
    params:
        scores=paper_scores(),
        predictions={m: f for m, f in model_predictions().items() if m != "ensemble"},
        split=CFG.scored_split,
        backbones=BACKBONES,
        losses=list(CFG.grid.losses),
        loss_settings=P.canonical(CFG.losses),
        select=CFG.ensemble.select,
        threshold=CFG.evaluate.threshold,
        bootstrap=CFG.evaluate.bootstrap,
        bootstrap_seed=CFG.evaluate.bootstrap_seed,
        metrics={
            f"{b}/{l}/seed_{s}": P.model_file("metrics.json", "", b, l, s)
            for b, l in MODELS
            for s in CFG.grid.seeds
        },
    script:
        "../scripts/tables.py"


rule figures:
    input:
        files=nested_files(figure_inputs()),
        summary=P.SAMPLES_SUMMARY,
    output:
        **{
            name: report(
                path,
                caption="../report/"
                + ("curves_backbone" if name.startswith("curves") else name)
                + ".rst",
                category="Figures",
                labels={"figure": name},
            )
            for name, path in P.figure_files(CFG).items()
        },
    log:
        log_file("figures"),
    conda:
        ENV
    params:
        files=figure_inputs(),
        split=CFG.scored_split,
        backbones=BACKBONES,
        losses=list(CFG.grid.losses),
    script:
        "../scripts/figures.py"


rule subjects:
    """Accuracy and errors per subject (patient) of the ensemble and its members, worst first."""
    input:
        ensemble=P.PREDICTIONS.format(scope="", model="ensemble"),
        choice=P.ENSEMBLE_CHOICE.format(scope=""),
        summary=P.SAMPLES_SUMMARY,
        members=nested_files(model_predictions()),
    output:
        csv=report(
            P.SUBJECTS_TABLE.format(ext="csv"),
            caption="../report/subjects.rst",
            category="Tables",
            labels={"table": "per subject"},
        ),
        md=P.SUBJECTS_TABLE.format(ext="md"),
    log:
        log_file("subjects"),
    conda:
        ENV
    params:
        predictions={m: f for m, f in model_predictions().items() if m != "ensemble"},
        threshold=CFG.evaluate.threshold,
        split=CFG.scored_split,
    script:
        "../scripts/subjects.py"


rule gradcam:
    """Grad-CAM panels of the ensemble's members on right and wrong cells of the scored split."""
    input:
        ensemble=P.PREDICTIONS.format(scope="", model="ensemble"),
        choice=P.ENSEMBLE_CHOICE.format(scope=""),
        summary=P.SAMPLES_SUMMARY,
        models=[
            P.model_file("model.keras", "", b, l, CFG.grid.seeds[0]) for b, l in MODELS
        ],
        crops=nested_files(scored_crops()),
    output:
        **{
            f"gradcam_{b}": report(
                P.GRADCAM.format(backbone=b),
                caption="../report/gradcam.rst",
                category="Figures",
                labels={"figure": f"Grad-CAM {b}"},
            )
            for b in BACKBONES
        },
    log:
        log_file("gradcam"),
    conda:
        ENV
    threads: TRAIN_THREADS
    resources:
        gpu=GPU_PER_JOB,
        mem_mb=CFG.resources.mem_mb,
    params:
        model_dirs={
            f"{b}/{l}": P.model_dir("", b, l, CFG.grid.seeds[0]) for b, l in MODELS
        },
        crops=scored_crops(),
        threshold=CFG.evaluate.threshold,
        split=CFG.scored_split,
        gpu_locks=P.GPU_LOCKS,
    script:
        "../scripts/gradcam.py"


rule cv_summary:
    input:
        scores=nested_files(cv_scores()),
        choices=[P.ENSEMBLE_CHOICE.format(scope=s) for s in SCOPES],
    output:
        summary=P.CV_SUMMARY,
        csv=report(
            P.CV_TABLE.format(ext="csv"),
            caption="../report/cv_summary.rst",
            category="Tables",
            labels={"table": "cross-validation"},
        ),
        md=P.CV_TABLE.format(ext="md"),
        figure=report(
            P.CV_FIGURE,
            caption="../report/cv_f1.rst",
            category="Figures",
            labels={"figure": "cross-validation F1"},
        ),
    log:
        log_file("cv_summary"),
    conda:
        ENV
    params:
        scores=cv_scores(),
        choices={P.fold_of(s): P.ENSEMBLE_CHOICE.format(scope=s) for s in SCOPES},
    script:
        "../scripts/cv_summary.py"
