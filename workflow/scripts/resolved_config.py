"""Rule `resolved_config`: the configuration this run resolved to, as YAML (results/config.yaml)."""

from leukoscope.workflow.script import run


def main(smk):
    from leukoscope.config import write_resolved_config

    write_resolved_config(smk.output[0], smk.params.config, smk.params.base, list(smk.params.files))


run(snakemake, main)  # noqa: F821
