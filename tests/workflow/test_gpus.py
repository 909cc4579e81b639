"""GPU ids for the workflow's jobs: one lock per GPU slot (jobs_per_gpu), so no more jobs share a GPU than
asked; more GPUs asked for than exist is one line at start; CPU threads split."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from leukoscope.errors import ConfigError
from leukoscope.workflow import machine as gpus


@pytest.fixture(autouse=True)
def _gpu_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """claim_gpu sets CUDA_VISIBLE_DEVICES (and memory settings) in this process: undone after each test,
    or a later test in the same worker would see a GPU this machine does not have."""
    for name in ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH", "XLA_PYTHON_CLIENT_PREALLOCATE"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


@contextlib.contextmanager
def holding(lock_dir: Path, pool: list[str], jobs_per_gpu: int = 1) -> Iterator[str | None]:
    """claim_gpu for a block: the slot is given back at its end."""
    try:
        yield gpus.claim_gpu(lock_dir, pool, jobs_per_gpu=jobs_per_gpu)
    finally:
        gpus.release_gpus()


HOLD = """
import os, sys, time
from leukoscope.workflow import machine as gpus
slots = int(sys.argv[3]) if len(sys.argv) > 3 else None
try:
    gpu = gpus.claim_gpu(sys.argv[1], sys.argv[2].split(","), wait_s=float(os.environ.get("WAIT_S", "3600")),
                         jobs_per_gpu=slots)
except Exception as exc:
    print(f"error: {exc}", flush=True)
    sys.exit(2)
print(gpu, os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH"), os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
      flush=True)
time.sleep(30)
"""


def _holder(lock_dir: Path, pool: str, *extra: str, wait_s: float = 3600) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"} | {"WAIT_S": str(wait_s)}
    return subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock_dir), pool, *extra], stdout=subprocess.PIPE, text=True, env=env
    )


def test_visible_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gpus.visible_gpus("none") == []
    assert gpus.visible_gpus("0,2") == ["0", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert gpus.visible_gpus("auto") == ["1", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpus.visible_gpus("auto") == []
    with pytest.raises(ConfigError, match=r"resources\.gpus"):
        gpus.visible_gpus("first")


def test_two_jobs_get_two_gpus_and_a_killed_job_frees_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    holder = _holder(tmp_path, "0,1")
    try:
        assert holder.stdout is not None
        held, growth, _ = holder.stdout.readline().split()
        assert held == "0" and growth == "None"  # a GPU of its own: TensorFlow's default memory use
        with holding(tmp_path, ["0", "1"]) as mine:
            assert mine == "1" and os.environ["CUDA_VISIBLE_DEVICES"] == "1"
            with pytest.raises(ConfigError, match="no free GPU slot"):
                gpus.claim_gpu(tmp_path, ["0", "1"], wait_s=0.1)
    finally:
        holder.kill()
        holder.wait()
    with holding(tmp_path, ["0", "1"]) as mine:
        assert mine == "0"  # the killed holder's lock went with its process


def test_no_gpus_hides_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert gpus.claim_gpu(tmp_path, []) is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""


def test_slurm_assigns_the_gpu_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    for name in ("TF_FORCE_GPU_ALLOW_GROWTH", "XLA_PYTHON_CLIENT_PREALLOCATE", gpus.SLOTS_ENV):
        monkeypatch.setenv(name, "")  # recorded, so that the test's own settings are undone after it
        monkeypatch.delenv(name)
    assert gpus.claim_gpu(tmp_path, ["0", "1"]) == "3"
    assert not list(tmp_path.iterdir()) and "TF_FORCE_GPU_ALLOW_GROWTH" not in os.environ
    monkeypatch.setenv(gpus.SLOTS_ENV, "2")  # a GPU shared through gres/shard: memory on demand
    assert gpus.claim_gpu(tmp_path, []) == "3" and os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


def test_training_threads() -> None:
    assert gpus.train_threads(16, [], None, 2) == 8  # CPU only: two jobs share the cores
    assert gpus.train_threads(2, [], None, 2) == 1
    assert gpus.train_threads(16, ["0", "1"], None, 2) == 8
    assert gpus.train_threads(64, ["0"], None, 2) == 8
    assert gpus.train_threads(16, [], 3, 2) == 3
    assert gpus.train_threads(16, ["0"], None, 2, jobs_per_gpu=2) == 8
    assert gpus.train_threads(16, ["0", "1"], None, 2, jobs_per_gpu=3) == 2


def test_two_jobs_share_a_gpu_with_two_slots_and_a_third_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jobs_per_gpu 2 on one (fake) GPU id: two processes hold it at once, on demand memory; a third
    waits for a slot (and gives up after its short wait_s); once a holder dies, the next one gets in."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    first, second = _holder(tmp_path, "0", "2"), _holder(tmp_path, "0", "2")
    third = None
    try:
        lines = [p.stdout.readline().split() for p in (first, second) if p.stdout is not None]
        assert lines == [["0", "true", "false"]] * 2  # both on GPU 0 now, growing their memory
        third = _holder(tmp_path, "0", "2", wait_s=3)
        assert third.wait(timeout=60) == 2 and third.stdout is not None
        assert "no free GPU slot among 0 (2 per GPU)" in third.stdout.read()
        first.kill()
        first.wait()
        fourth = _holder(tmp_path, "0", "2", wait_s=3)
        assert fourth.stdout is not None and fourth.stdout.readline().split()[0] == "0"
        fourth.kill()
        fourth.wait()
    finally:
        for proc in (first, second, third):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_slots_fill_every_gpu_before_sharing_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    holders = [_holder(tmp_path, "0,1", "2") for _ in range(2)]
    try:
        got = sorted(p.stdout.readline().split()[0] for p in holders if p.stdout is not None)
        assert got == ["0", "1"]  # two jobs on two GPUs: each its own, not two on GPU 0
    finally:
        for proc in holders:
            proc.kill()
            proc.wait()


def test_the_parse_time_pool_refuses_more_gpus_than_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert gpus.gpu_pool("auto", 1) == (["0", "1"], 2)
    assert gpus.gpu_pool("auto", 3, given=6) == (["0", "1"], 6)
    assert gpus.gpu_pool("1", 2, given=1) == (["1"], 2)  # fewer than the slots: the user's cap
    with pytest.raises(
        ConfigError, match=r"--resources gpu=3 asks for more .* 2 GPU\(s\) x resources\.jobs_per_gpu 1 = 2"
    ):
        gpus.gpu_pool("auto", 1, given=3)
    with pytest.raises(ConfigError, match=r"resources\.gpus is '0,1,2'.*shows GPU\(s\) 0,1.*drop 2"):
        gpus.gpu_pool("0,1,2", 1)
    assert gpus.gpu_pool("none", 2, given=100) == ([], 0)  # a login node: the profile's cap for SLURM
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpus.gpu_pool("auto", 2, given=100) == ([], 0)


@pytest.mark.slow
def test_the_workflow_refuses_more_gpu_jobs_than_slots_at_start(tmp_path: Path) -> None:
    """common.smk calls gpu_pool: `--resources gpu=5` on two (fake) GPUs is one line before any job,
    unless resources.jobs_per_gpu gives the GPUs that many slots."""
    from leukoscope.data.synth import write_cnmc_synth

    repo = Path(__file__).resolve().parents[2]
    data = tmp_path / "C-NMC_Leukemia"
    write_cnmc_synth(data, subjects=6, cells_per_subject=2, size=40, prelim=4, final=2)
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    env |= {"CUDA_VISIBLE_DEVICES": "0,1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs = {}
    for jobs_per_gpu in (2, 3):
        overlay = tmp_path / f"gpus{jobs_per_gpu}.yaml"
        overlay.write_text(f"dataset: {{path: {data}}}\nresources: {{jobs_per_gpu: {jobs_per_gpu}}}\n")
        runs[jobs_per_gpu] = subprocess.run(
            [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(tmp_path),
             "--configfile", str(repo / "config.yaml"), str(overlay), "--resources", "gpu=5", "-n"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    refused = runs[2].stdout + runs[2].stderr
    assert runs[2].returncode != 0 and "Traceback" not in refused
    assert "--resources gpu=5 asks for more GPU jobs at once than this machine runs: 2 GPU(s)" in refused
    assert runs[3].returncode == 0, runs[3].stderr[-3000:]
    assert "gpu=1" in runs[3].stdout  # each training job takes one slot
    # the cluster profile (gpu: 100 over the whole cluster) from a login node that shows these two GPUs:
    # the submit host shares out none of its own (resources.gpus: none), so nothing caps the run
    login = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(repo / "config.yaml"), str(tmp_path / "gpus2.yaml"),
         "--workflow-profile", str(repo / "profiles" / "slurm"), "--slurm-no-account", "-n"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr[-3000:]
    assert "gpu=1" in login.stdout and "asks for more GPU jobs" not in login.stdout + login.stderr
