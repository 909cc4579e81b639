# The paper's tables and figures (official protocol), or the cross-validation summary (cv protocol).


localrules:
    tables,
    figures,
    cv_summary,


rule tables:
    input:
        scores=nested_files(official_scores()),
        summary=P.SAMPLES_SUMMARY,
        augmented=P.AUGMENT_INDEX.format(scope=""),
        choice=P.ENSEMBLE_CHOICE.format(scope=""),
        metrics=[P.model_file("metrics.json", "", b, l) for b, l in MODELS],
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
        scores=official_scores(),
        backbones=BACKBONES,
        losses=list(CFG.grid.losses),
        select=CFG.ensemble.select,
        metrics={f"{b}/{l}": P.model_file("metrics.json", "", b, l) for b, l in MODELS},
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
        backbones=BACKBONES,
        losses=list(CFG.grid.losses),
    script:
        "../scripts/figures.py"


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
