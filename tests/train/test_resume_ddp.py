"""Crash safety and scale-out: kill -9 mid-run then --resume; 2-process DDP on CPU (gloo)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from .conftest import REPO, run_cli, tiny_flags

pytestmark = pytest.mark.slow
EPOCHS = 12


def _ckpt_epoch(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])


def _start_training(out: Path, cells_dir: Path, cache_dir: Path) -> subprocess.Popen[bytes]:
    flags = [*tiny_flags(cells_dir, out, cache_dir), "--epochs", str(EPOCHS), "--image-size", "48"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "leukoscope", "train", *flags],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_resume_after_kill_9(cells_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.ckpt"
    proc = _start_training(out, cells_dir, cache_dir)
    deadline = time.monotonic() + 240
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert last.exists(), proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    killed_at = _ckpt_epoch(last)
    assert killed_at < EPOCHS - 1, "the run finished before it could be killed"
    assert not (out / "model_card.json").exists()  # it really died mid-run

    result = run_cli("train", "--resume", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    assert _ckpt_epoch(last) == EPOCHS - 1
    assert (out / "model_card.json").is_file() and (out / "curves.png").is_file()
    versions = sorted((out / "logs" / "csv").glob("version_*/metrics.csv"))
    resumed = pd.read_csv(versions[-1])
    assert resumed["epoch"].min() >= killed_at >= 0  # continued, did not restart from epoch 0
    assert resumed["epoch"].max() == EPOCHS - 1


def test_ddp_two_processes_on_cpu(cells_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    flags = tiny_flags(cells_dir, out, cache_dir)
    result = run_cli(
        "train", *flags, "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu", timeout=400
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MEMBER: 2/2" in result.stdout + result.stderr  # Lightning launched the second rank
    assert (out / "model_card.json").is_file() and (out / "metrics.json").is_file()
    assert (out / "checkpoints" / "best.ckpt").is_file()
    assert "Traceback" not in result.stderr
