"""Run the Snakemake workflow from Python (`leukoscope demo`, tests): checks first, one line on failure.

`preflight_file` applies every check the Snakefile would (schema, names, the dataset) in this process, so
bad input is one `LeukoScopeError` line (exit code 2 through the CLI) before Snakemake starts. A job that
fails later is reported by its own one-line `error: <rule>: ...` message, which `run` repeats.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from leukoscope.errors import ConfigError, LeukoScopeError
from leukoscope.workflow.config import WorkflowConfig


class WorkflowFailed(LeukoScopeError):
    """Snakemake stopped: a job failed (its one-line reason and log are in the message)."""


def snakefile() -> Path:
    """The repository's Snakefile, beside the source tree this package was installed from (editable)."""
    env = os.environ.get("LEUKOSCOPE_SNAKEFILE")
    return _found(Path(env) if env else Path(__file__).resolve().parents[3] / "Snakefile")


def dot_test_config(name: str) -> Path:
    """`.test/config/<name>.yaml` beside the Snakefile: the repository's small configs (demo.yaml is what
    `leukoscope demo` runs; .test/README.md says what each one is for)."""
    return _found(snakefile().parent / ".test" / "config" / f"{name}.yaml")


def _found(path: Path) -> Path:
    if not path.is_file():
        raise ConfigError(
            f"the repository's {path.name} was not found",
            path=path,
            hint="run from a clone of the repository (pip install -e .) or set LEUKOSCOPE_SNAKEFILE",
        )
    return path


def merged_config(*files: Path) -> dict[str, Any]:
    """The repository's config.yaml (the base every run starts from, as in the Snakefile), then each file
    over it, merged as Snakemake merges them (mappings key by key, any other value replaced)."""
    from leukoscope import tree
    from leukoscope.config import load_yaml

    base = snakefile().parent / "config.yaml"
    return tree.merge(load_yaml(base), *(load_yaml(path) for path in files))


def preflight_file(configfile: Path, workdir: Path) -> WorkflowConfig:
    """What the Snakefile checks at parse time and at start, here: (checked config) or one error line."""
    from leukoscope.workflow import plan

    with contextlib.chdir(workdir):
        cfg = WorkflowConfig.from_dict(merged_config(configfile), str(configfile))
        plan.preflight(cfg)
    cfg.check_names()  # last: it imports Keras
    return cfg


def run(
    workdir: Path,
    configfile: Path,
    *,
    cores: str = "all",
    extra: Sequence[str] = (),
    echo: Any = None,
    checked: bool = False,
) -> list[str]:
    """Run the workflow in `workdir`; its output lines. `echo(line)` shows them as they come. `checked`:
    `preflight_file` passed on this config, so Snakemake's `onstart` does not check (import Keras) again."""
    from leukoscope.workflow.plan import CHECKED_ENV

    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(snakefile()), "--directory", str(workdir),
        "--configfile", str(configfile), "--cores", cores, *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", CHECKED_ENV: "1" if checked else ""}
    lines: list[str] = []
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=workdir
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if echo is not None:
                echo(lines[-1])
        code = proc.wait()
    if code != 0:
        raise WorkflowFailed(failure_line(lines), path=workdir / "results" / "logs")
    return lines


def failure_line(lines: Sequence[str]) -> str:
    """The job's own `error: ...` line when it printed one, else Snakemake's first error line."""
    for line in lines:
        if line.startswith("error: "):
            return "the workflow stopped: " + line.removeprefix("error: ")
    for i, line in enumerate(lines):
        if "Error" in line and i + 1 < len(lines):
            return f"the workflow stopped: {line.strip()} {lines[i + 1].strip()}"
    return "the workflow stopped (see the messages above)"
