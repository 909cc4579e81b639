"""Rule `weights` (a local rule): fetch a backbone's ImageNet notop weights once into `resources/keras/`.

Compute nodes often have no internet: training jobs run with KERAS_HOME pointing at the same folder, so
Keras finds the file (md5 checked) and never downloads (`leukoscope.models.weights.fetch_weights`). The
record (the rule's output) names each file with its md5 and size.
"""

from typing import Any

from leukoscope.models.weights import fetch_weights


def main(smk: Any) -> None:
    from leukoscope._io import write_json

    write_json(smk.output[0], fetch_weights(smk.wildcards.backbone, smk.params.keras_home))


if "snakemake" in globals():
    from leukoscope.workflow.script import run

    run(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
