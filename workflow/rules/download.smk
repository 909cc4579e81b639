# Downloads run where there is internet (local rules, never submitted to a cluster); the compute nodes
# only read resources/.


rule download:
    """The dataset in place (Kaggle, a zip URL with its sha256, a local folder or synthetic), verified."""
    output:
        "resources/download/dataset.json",
    log:
        "results/logs/download.log",
    localrule: True
    conda:
        ENV
    params:
        dataset=CFG.section("dataset"),
    script:
        "../scripts/download.py"


rule weights:
    """A backbone's ImageNet notop weights in resources/keras/models/ (training jobs set KERAS_HOME there)."""
    output:
        "resources/weights/{backbone}.json",
    log:
        "results/logs/weights/{backbone}.log",
    localrule: True
    conda:
        ENV
    params:
        keras_home="resources/keras",
    script:
        "../scripts/weights.py"
