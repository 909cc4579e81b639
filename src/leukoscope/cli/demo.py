"""`leukoscope demo` (what `make demo` runs): the whole Snakemake workflow on synthetic C-NMC-like data.

The paper's chain at CPU scale, offline: synthetic data in C-NMC's layout (three folds of subjects, a
labelled preliminary test and an unlabelled final test of NEW subjects), the sample sheet and data check,
crops, the oversampled augmented training set, its statistics, DenseNet201 and EfficientNetB2 from
scratch (`train.recipe: auto` runs the scratch recipe) with all five losses, predictions and scores, the
ensemble, Tables 1-3, the figures and `results/report.html`. 32 px images, one epoch of 16 eager steps
(graph tracing DenseNet201 costs more than training it here), two training jobs side by side with one
thread each: enough for DenseNet201 to learn the synthetic cells, not for EfficientNetB2 from random
weights (README, "What the demo does"). A rerun finds everything done. The config is the repository's
.test/config/demo.yaml; --backbones, --losses and --seeds replace its grid.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from leukoscope.cli._common import console
from leukoscope.errors import ConfigError


def demo_config() -> dict[str, Any]:
    """The demo's workflow config: the repository's .test/config/demo.yaml (README's numbers come from it)."""
    from leukoscope.config import load_yaml
    from leukoscope.workflow import runner

    return load_yaml(runner.dot_test_config("demo"))


def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Working directory of the demo run."),
    cores: str = typer.Option("all", "--cores", help="Cores for Snakemake (all, or a number)."),
    backbones: str | None = typer.Option(
        None, "--backbones", help="Comma-separated (default: the paper's two)."
    ),
    losses: str | None = typer.Option(None, "--losses", help="Comma-separated (default: all five)."),
    seeds: str | None = typer.Option(
        None, "--seeds", help="Comma-separated training seeds (default: one); each model once per seed."
    ),
) -> None:
    """Run the whole workflow on synthetic data on this CPU; print Table 2 and where the report is."""
    import yaml

    from leukoscope._io import write_text
    from leukoscope.workflow import runner

    start = time.perf_counter()
    out = out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    config = demo_config()
    if backbones:
        config["grid"]["backbones"] = [b.strip() for b in backbones.split(",") if b.strip()]
    if losses:
        config["grid"]["losses"] = [x.strip() for x in losses.split(",") if x.strip()]
    if seeds:
        try:
            config["grid"]["seeds"] = [int(x) for x in seeds.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"--seeds is {seeds!r}", hint="whole numbers, e.g. --seeds 1,2") from None
    configfile = write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    console.rule("[bold]LeukoScope demo: the Snakemake workflow on synthetic C-NMC-like data")
    runner.preflight_file(configfile, out)
    typer.echo(f"workflow: {runner.snakefile()}  working directory: {out}", err=True)
    runner.run(out, configfile, cores=cores, extra=["--quiet", "rules"], echo=_progress, checked=True)
    report = out / "results" / "report.html"
    runner.run(out, configfile, cores=cores, extra=["--quiet", "all", "--report", str(report)], checked=True)
    table2 = (out / "results" / "tables" / "table2.md").read_text(encoding="utf-8")
    typer.echo(table2, err=True)  # as written: Markdown, not re-wrapped to the terminal's width
    typer.echo(f"tables:  {out / 'results' / 'tables'}", err=True)
    typer.echo(f"report:  {report}", err=True)
    typer.echo(f"demo took {time.perf_counter() - start:.0f} s", err=True)


def _progress(line: str) -> None:
    """Snakemake's progress and any job's error line; the rest is in the run's log."""
    if "steps (" in line or line.startswith("error: ") or "Error" in line or "Nothing to be done" in line:
        console.print(line, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
