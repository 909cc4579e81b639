"""Training survives `kill -9` of the whole `snakemake` run: the same command again resumes and completes,
and the model equals an uninterrupted run's (train.deterministic). Runs locally (profiles/default).

Also: the stale-lock release that lets the same command start again (leukoscope.workflow.machine)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from slurm_cluster import (
    MODEL,
    REPO,
    SNAKEMAKE,
    STATE_ROOT,
    TRAIN_LOG,
    kill_run,
    model_weights,
    wait_for_epoch,
    write_tiny_config,
)

pytestmark = pytest.mark.slow


def _command(workdir: Path, *extra: str) -> list[str]:
    return [
        "timeout", "-k", "15", "400", str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(workdir / "tiny.yaml"), "--cores", "2",
        MODEL, *extra,  # the target first: --forcerun takes every word after it
    ]  # fmt: skip


def _run(
    workdir: Path, *extra: str, background: bool = False
) -> subprocess.CompletedProcess | subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = open(workdir / "snakemake.log", "a")  # noqa: SIM115 (closed with the process)
    kwargs = {"stdout": log, "stderr": subprocess.STDOUT, "env": env, "cwd": workdir, "text": True}
    if background:
        return subprocess.Popen(_command(workdir, *extra), start_new_session=True, **kwargs)
    with log:
        return subprocess.run(_command(workdir, *extra), **kwargs)


def test_kill_9_of_the_whole_run_then_the_same_command_resumes_to_the_same_model(tmp_path: Path) -> None:
    workdir = tmp_path / "run"
    write_tiny_config(workdir)
    proc = _run(workdir, background=True)
    assert isinstance(proc, subprocess.Popen)
    try:
        killed_after = wait_for_epoch(workdir, 2, proc=proc)
    finally:
        kill_run(proc, workdir)
    assert not (workdir / MODEL).exists()  # nothing of the killed job looks finished
    assert list((workdir / ".snakemake" / "locks").iterdir())  # Snakemake's locks were left behind
    assert list((workdir / STATE_ROOT).glob("*/state.json"))  # the resume state, outside the outputs

    again = _run(workdir)  # the same command again
    log = (workdir / "snakemake.log").read_text(errors="replace")
    assert again.returncode == 0, log[-4000:]
    train_log = (workdir / TRAIN_LOG).read_text()
    assert "resuming simplecnn / bce at epoch" in train_log, train_log[-3000:]
    resumed_at = int(train_log.split("resuming simplecnn / bce at epoch ")[1].split()[0])
    assert killed_after + 1 <= resumed_at <= 10
    assert not (workdir / STATE_ROOT).exists() or not any((workdir / STATE_ROOT).iterdir())  # cleaned up
    shutil.copy(workdir / MODEL, workdir / "resumed.keras")

    reference = _run(workdir, "--forcerun", "train")  # the same job, uninterrupted from epoch 1
    assert reference.returncode == 0
    assert "training simplecnn / bce from epoch 1" in (workdir / TRAIN_LOG).read_text()
    resumed, uninterrupted = model_weights(workdir / "resumed.keras"), model_weights(workdir / MODEL)
    assert len(resumed) == len(uninterrupted) > 0
    assert all(np.array_equal(a, b) for a, b in zip(resumed, uninterrupted, strict=True))


def test_stale_locks_go_only_when_no_run_holds_the_folder(tmp_path: Path) -> None:
    """Snakemake's lock files after a SIGKILL are removed; while a live run holds the flock they stay."""
    import sys

    from leukoscope.workflow.machine import release_stale_locks

    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("x")
    live_run = (
        "import sys, time; from leukoscope.workflow.machine import release_stale_locks; "
        "release_stale_locks(sys.argv[1]); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", live_run, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        (locks / "1.output.lock").write_text("x")  # the live run's own lock
        assert release_stale_locks(tmp_path) == [] and (locks / "1.output.lock").exists()
    finally:
        holder.kill()  # SIGKILL: the kernel drops its flock
        holder.wait()
    assert release_stale_locks(tmp_path) == [locks / "1.output.lock"] and not list(locks.iterdir())
