"""`leukoscope workflow`: the Snakemake workflow with the CLI's contract (checks first, one line, exit 2).

    leukoscope workflow --configfile my.yaml --directory runs/mine [-- SNAKEMAKE ARGS ...]

is `snakemake -s REPO/Snakefile --directory DIR --configfile my.yaml --cores all ...`, after the checks
the Snakefile would make (schema, backbone and loss names, the dataset), so bad input is one line before
Snakemake starts. The grid and the folds are the workflow's: there is no other way to run them.
"""

from __future__ import annotations

from pathlib import Path

import typer

from leukoscope.cli._common import console


def workflow(
    ctx: typer.Context,
    configfile: Path = typer.Option(Path("config.yaml"), "--configfile", help="The workflow's config."),
    directory: Path = typer.Option(
        Path("."), "--directory", "-d", help="Working directory (results/ go here)."
    ),
    cores: str = typer.Option("all", "--cores", help="Cores for Snakemake (all, or a number)."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="List the jobs, run nothing."),
) -> None:
    """Check the config and the dataset, then run the workflow (extra arguments go to Snakemake)."""
    from leukoscope.workflow import runner

    directory = directory.absolute()
    directory.mkdir(parents=True, exist_ok=True)
    configfile = configfile.absolute()
    runner.preflight_file(configfile, directory)
    extra = ["-n"] if dry_run else []
    runner.run(
        directory,
        configfile,
        cores=cores,
        extra=[*extra, *ctx.args],
        echo=lambda line: console.print(line, markup=False, highlight=False),
        checked=not any(arg.startswith(("--config", "-C")) for arg in ctx.args),  # else onstart checks
    )


def register(app: typer.Typer) -> None:
    app.command("workflow", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
        workflow
    )
