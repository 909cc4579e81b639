"""Rule `resolved_config`: the configuration this run resolved to, as YAML (results/config.yaml)."""

from typing import Any

from leukoscope.workflow.script import run


def main(smk: Any) -> None:
    from pathlib import Path

    import yaml

    from leukoscope._io import write_text

    base = Path(smk.params.base).resolve()
    overrides = [f for f in smk.params.files if Path(f).resolve() != base]
    header = (
        f"# Resolved from {base}, then {', '.join(overrides) or 'no other file'} over it, then the "
        "defaults of workflow/schemas/config.schema.yaml\n"
    )
    write_text(smk.output[0], header + yaml.safe_dump(dict(smk.params.config), sort_keys=False))


run(snakemake, main)  # noqa: F821
