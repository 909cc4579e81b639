"""GPU ids for the workflow's jobs: one lock per GPU, so two jobs never share one; CPU threads split."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from leukoscope.errors import ConfigError
from leukoscope.workflow import gpus

HOLD = """
import sys, time
from leukoscope.workflow import gpus
print(gpus.claim_gpu(sys.argv[1], sys.argv[2].split(",")), flush=True)
time.sleep(30)
"""


def test_visible_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gpus.visible_gpus("none") == []
    assert gpus.visible_gpus("0,2") == ["0", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert gpus.visible_gpus("auto") == ["1", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpus.visible_gpus("auto") == []
    with pytest.raises(ConfigError, match=r"train\.gpus"):
        gpus.visible_gpus("first")


def test_two_jobs_get_two_gpus_and_a_killed_job_frees_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path), "0,1"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout is not None
        held = holder.stdout.readline().strip()
        assert held == "0"
        with gpus.holding(tmp_path, ["0", "1"]) as mine:
            assert mine == "1" and os.environ["CUDA_VISIBLE_DEVICES"] == "1"
            with pytest.raises(ConfigError, match="no free GPU"):
                gpus.claim_gpu(tmp_path, ["0", "1"], wait_s=0.1)
    finally:
        holder.kill()
        holder.wait()
    with gpus.holding(tmp_path, ["0", "1"]) as mine:
        assert mine == "0"  # the killed holder's lock went with its process


def test_no_gpus_hides_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert gpus.claim_gpu(tmp_path, []) is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""


def test_slurm_assigns_the_gpu_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert gpus.claim_gpu(tmp_path, ["0", "1"]) == "3"
    assert not list(tmp_path.iterdir())


def test_training_threads() -> None:
    assert gpus.train_threads(16, [], None, 2) == 8  # CPU only: two jobs share the cores
    assert gpus.train_threads(2, [], None, 2) == 1
    assert gpus.train_threads(16, ["0", "1"], None, 2) == 8
    assert gpus.train_threads(64, ["0"], None, 2) == 8
    assert gpus.train_threads(16, [], 3, 2) == 3
