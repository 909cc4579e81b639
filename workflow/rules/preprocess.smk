# Crop (one file per split), augment (the oversampled training set, in shards), stats (mean / std).


rule crop:
    input:
        sheet=P.SAMPLES,
        summary=P.SAMPLES_SUMMARY,
    output:
        images=P.CROP,
        index=P.CROP_INDEX,
    log:
        log_file("crop/{part}"),
    conda:
        ENV
    threads: min(4, workflow.cores)
    params:
        preprocess=P.crop_settings(CFG),
    script:
        "../scripts/crop.py"


rule augment:
    input:
        **crop_of(P.train_part(CFG)),
        summary=P.SAMPLES_SUMMARY,
    output:
        shards=P.shards(CFG),
        index=P.AUGMENT_INDEX,
    log:
        log_file("{scope}augment"),
    conda:
        ENV
    params:
        augment=P.augment_settings(CFG),
        fold=lambda wildcards: P.fold_of(wildcards.scope),
    script:
        "../scripts/augment.py"


rule stats:
    input:
        **crop_of(P.train_part(CFG)),
        shards=P.shards(CFG),
        index=P.AUGMENT_INDEX,
    output:
        stats=P.STATS,
    log:
        log_file("{scope}stats"),
    conda:
        ENV
    params:
        images=CFG.stats.images,
    script:
        "../scripts/stats.py"
