# The sample sheet: every image once, with its split / fold and class; the data check report; and the
# resolved configuration (config.yaml + the user's files + defaults) for provenance.


rule samples:
    input:
        dataset=rules.download.output[0],
    output:
        sheet="results/samples/samples.parquet",
        summary="results/samples/summary.json",
        check="results/samples/check.json",
    log:
        "results/logs/samples.log",
    conda:
        ENV
    threads: min(4, workflow.cores)
    params:
        settings=plan.samples_settings(CFG),
        augment=plan.augment_settings(CFG),
    script:
        "../scripts/samples.py"


rule resolved_config:
    """What this run was asked to do: every key after config.yaml, the user's files and the defaults."""
    output:
        "results/config.yaml",
    log:
        "results/logs/resolved_config.log",
    localrule: True
    conda:
        ENV
    params:
        config=plan.canonical(CFG.to_dict()),
        base=os.path.join(workflow.basedir, "config.yaml"),
        files=[str(f) for f in workflow.configfiles],
    script:
        "../scripts/resolved_config.py"
