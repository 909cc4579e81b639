"""The cluster profile on a real one-node SLURM (two fake GPUs): the tiny chain, GPUs, scancel + retries.

Needs root and Debian's SLURM packages (installed when missing: `make slurm`); skipped only where they
cannot be installed. Each SLURM job costs Snakemake 7-10 s of start-up, so the chain is one grid cell.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from slurm_cluster import (
    GROUPS,
    TRAIN_LOG,
    install,
    job_records,
    local_slurm,
    run_logs,
    snakemake_on_slurm,
    squeue,
    wait_for_epoch,
    write_tiny_config,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    reason = install()
    if reason is not None:
        pytest.skip(reason)
    with local_slurm():
        yield


def _group(job: dict[str, str]) -> str:
    """The group a SLURM job ran (the plugin's comment: rule_group_<name>_<rules>)."""
    return job["Comment"].removeprefix("rule_").removeprefix("group_").split("_")[0]


def _log_tail(workdir: Path) -> str:
    logs = sorted(workdir.glob("snakemake-*.log"))
    return logs[-1].read_text(errors="replace")[-4000:] if logs else "(no log)"


def test_the_tiny_chain_on_slurm_gpus_and_a_cancelled_training_job_resumed(
    cluster: None, tmp_path: Path
) -> None:
    """The whole chain with profiles/slurm; its training job is scancel-ed mid-run (as a walltime kill
    would end it) and must come back through `retries`, with twice the runtime, resuming, not restarting.
    It trains on two mirrored CPU replicas: fake GPUs cannot run TensorFlow, CPU replicas prove the wiring."""
    workdir = tmp_path / "chain"
    config = write_tiny_config(workdir, devices="cpu:2")  # the multi-device wiring: two mirrored replicas
    proc = snakemake_on_slurm(workdir, "--configfile", str(config), *GROUPS, timeout=480, background=True)
    assert isinstance(proc, subprocess.Popen)
    try:
        killed_after = wait_for_epoch(workdir, 2, timeout=300, proc=proc)
        running = [row for row in squeue("%i", "%k", "%T") if "model" in row[1] and row[2] == "RUNNING"]
        assert len(running) == 1, running
        subprocess.run(["scancel", running[0][0]], check=True, timeout=30)
        assert proc.wait(timeout=420) == 0, run_logs(workdir)
    finally:
        if proc.poll() is None:
            proc.kill()

    again = snakemake_on_slurm(workdir, "--configfile", str(config), *GROUPS, "--dry-run", timeout=120)
    assert again.returncode == 0 and "Nothing to be done" in _log_tail(workdir)  # every artifact is there
    results = workdir / "results"
    for name in ("model.keras", "model_card.json", "metrics.json", "history.csv", "curves.png"):
        assert (results / "models/simplecnn/bce/seed_42" / name).stat().st_size > 0
    for table in ("table1", "table2", "table3"):
        assert (results / "tables" / f"{table}.csv").stat().st_size > 0
    assert sorted(p.name for p in (results / "figures").glob("*.png"))
    assert json.loads((results / "ensemble/ensemble.json").read_text())
    assert (results / "ensemble/isbi_submission.zip").stat().st_size > 0
    record = json.loads((workdir / "resources/download/dataset.json").read_text())
    assert record["source"] == "synthetic" and record["files"] > 0
    assert len(pd.read_csv(results / "models/simplecnn/bce/seed_42/history.csv")) == 10  # every epoch, once

    jobs = job_records(workdir)
    assert [(_group(j), j["JobState"]) for j in jobs] == [
        ("prep", "COMPLETED"), ("model", "CANCELLED"), ("model", "COMPLETED"), ("gradcam", "COMPLETED"),
    ]  # fmt: skip
    prep, cancelled, retried, _gradcam = jobs
    assert "TresPerJob" not in prep  # the CPU stages ask for no GPU
    for job in (cancelled, retried):
        assert job["TresPerJob"] == "gres:gpu:1" and job["NumCPUs"] == "8"  # profiles/slurm's train
    # runtime x attempt: training 720 min + prediction 60 min on the first attempt, twice that on the second
    assert (cancelled["TimeLimit"], retried["TimeLimit"]) == ("13:00:00", "1-02:00:00")
    log = (workdir / TRAIN_LOG).read_text()
    assert re.search(r"\(GPU [01]\)", log)  # SLURM's CUDA_VISIBLE_DEVICES (one fake GPU) reached the job
    assert "Using MirroredStrategy with devices" in log and "device:CPU:1" in log  # train.devices: cpu:2
    assert "resuming simplecnn / bce at epoch" in log, log[-3000:]
    resumed_at = int(log.split("resuming simplecnn / bce at epoch ")[1].split()[0])
    assert killed_after + 1 <= resumed_at <= 10
