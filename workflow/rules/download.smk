# Downloads run where there is internet (local rules, never submitted to a cluster); the compute nodes
# only read resources/.


localrules:
    download,
    weights,


rule download:
    """The dataset in place (Kaggle, a zip URL with its sha256, a local folder or synthetic), verified."""
    output:
        P.DATASET_RECORD,
    log:
        log_file("download"),
    conda:
        ENV
    params:
        dataset=P.dataset_settings(CFG),
    script:
        "../scripts/download.py"


rule weights:
    """A backbone's ImageNet notop weights in resources/keras/models/ (training jobs set KERAS_HOME there)."""
    output:
        P.WEIGHTS_RECORD,
    log:
        log_file("weights/{backbone}"),
    conda:
        ENV
    params:
        keras_home=P.KERAS_HOME,
    script:
        "../scripts/weights.py"
