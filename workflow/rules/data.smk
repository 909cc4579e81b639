# The sample sheet: every image once, with its split / fold and class; the data check report; and the
# resolved configuration (config.yaml + the user's files + defaults) for provenance.


localrules:
    resolved_config,


rule samples:
    input:
        dataset=P.DATASET_RECORD,
    output:
        sheet=P.SAMPLES,
        summary=P.SAMPLES_SUMMARY,
        check=P.DATA_CHECK,
    log:
        log_file("samples"),
    conda:
        ENV
    threads: min(4, workflow.cores)
    params:
        settings=P.samples_settings(CFG),
        augment=P.augment_settings(CFG),
    script:
        "../scripts/samples.py"


rule resolved_config:
    """What this run was asked to do: every key after config.yaml, the user's files and the defaults."""
    output:
        P.RESOLVED_CONFIG,
    log:
        log_file("resolved_config"),
    conda:
        ENV
    params:
        config=P.canonical(CFG.to_dict()),
        base=os.path.join(workflow.basedir, "config.yaml"),
        files=[str(f) for f in workflow.configfiles],
    script:
        "../scripts/resolved_config.py"
