"""Crash safety and scale-out through the installed executable: kill -9 mid-run, then --resume, ends with
the weights of an uninterrupted run; two mirrored CPU replicas train (the MirroredStrategy wiring)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leukoscope.models.card import load_model

from .conftest import LEUKOSCOPE, REPO, run_cli, tiny_flags

pytestmark = pytest.mark.slow
EPOCHS = 6


def _flags(cells_dir: Path, out: Path, cache_dir: Path) -> list[str]:
    return [*tiny_flags(cells_dir, out, cache_dir), "--epochs", str(EPOCHS), "--image-size", "48",
            "--deterministic", "--patience", "99"]  # fmt: skip


def _state(out: Path) -> dict | None:
    files = list(out.parent.glob(f"{out.name}.state/*/state.json"))
    try:
        return json.loads(files[0].read_text()) if files else None
    except ValueError:
        return None


def test_kill_9_then_resume_equals_an_uninterrupted_run(
    cells_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    reference = tmp_path / "reference"
    result = run_cli("train", *_flags(cells_dir, reference, cache_dir))
    assert result.returncode == 0, result.stderr[-3000:]

    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        [str(LEUKOSCOPE), "train", *_flags(cells_dir, out, cache_dir)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        state = _state(out)
        if state and state["next_epoch"] >= 2:
            time.sleep(0.2)  # into the next epoch
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed = _state(out)
    assert killed is not None and 2 <= killed["next_epoch"] < EPOCHS, "the run finished before it was killed"
    assert not (out / "model.keras").exists()  # it really died mid-run

    result = run_cli("train", "--resume", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"at epoch {killed['next_epoch'] + 1} of {EPOCHS}" in result.stderr  # continued, not from epoch 1
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == list(range(EPOCHS))
    expected = pd.read_csv(reference / "history.csv")
    np.testing.assert_array_equal(history["loss"], expected["loss"])
    for a, b in zip(load_model(out)[0].get_weights(), load_model(reference)[0].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_two_mirrored_cpu_replicas_train(cells_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "mirrored"
    result = run_cli("train", *tiny_flags(cells_dir, out, cache_dir), "--devices", "cpu:2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 CPU replicas (MirroredStrategy)" in result.stderr
    assert (out / "model.keras").is_file()


def test_a_second_process_on_the_same_model_stops_with_one_line(tmp_path: Path) -> None:
    """While one job holds a model's state, another (a rerun beside a still-running SLURM job) stops."""
    from leukoscope.train.fit import exclusive

    state = tmp_path / "state"
    with exclusive(state):
        code = (
            "import sys; from pathlib import Path; from leukoscope.train.fit import exclusive\n"
            "from leukoscope.errors import ConfigError\n"
            "try:\n    with exclusive(Path(sys.argv[1])): pass\n"
            "except ConfigError as e:\n    print(e.one_line()); sys.exit(2)\n"
        )
        other = subprocess.run([sys.executable, "-c", code, str(state)], capture_output=True, text=True)
        assert other.returncode == 2 and f"pid {os.getpid()}" in other.stdout
    with exclusive(state):  # released: the next one gets it
        assert (state / ".lock").read_text() == f"pid {os.getpid()} on {os.uname().nodename}"
