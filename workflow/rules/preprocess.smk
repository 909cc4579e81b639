# Crop (one file per split), augment (the oversampled training set, in shards), stats (mean / std).


rule crop:
    input:
        sheet=rules.samples.output.sheet,
        summary=rules.samples.output.summary,
    output:
        images="results/crop/{part}.npy",
        index="results/crop/{part}.parquet",
    log:
        "results/logs/crop/{part}.log",
    conda:
        ENV
    threads: min(4, workflow.cores)
    params:
        preprocess=CFG.section("preprocess"),
    script:
        "../scripts/crop.py"


rule augment:
    input:
        **crop_files(plan.part(CFG, "train")),
        summary=rules.samples.output.summary,
    output:
        shards=expand(
            "results/{{scope}}augment/shard_{shard}.npy",
            shard=[f"{k:02d}" for k in range(CFG.augment.shards)],
        ),
        index="results/{scope}augment/index.parquet",
    log:
        "results/logs/{scope}augment.log",
    conda:
        ENV
    params:
        augment=plan.augment_settings(CFG),
        fold=lambda wildcards: plan.fold_of(wildcards.scope),
    script:
        "../scripts/augment.py"


rule stats:
    input:
        **crop_files(plan.part(CFG, "train")),
        shards=rules.augment.output.shards,
        index=rules.augment.output.index,
    output:
        stats="results/{scope}stats/stats.json",
    log:
        "results/logs/{scope}stats.log",
    conda:
        ENV
    params:
        images=CFG.stats.images,
    script:
        "../scripts/stats.py"
