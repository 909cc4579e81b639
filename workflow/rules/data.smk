# The sample sheet: every image once, with its split / fold and class; and the data check report.


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
    script:
        "../scripts/samples.py"
