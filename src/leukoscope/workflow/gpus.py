"""GPUs and cores for the workflow's TensorFlow jobs on one machine.

Snakemake counts a `gpu` resource but never says WHICH GPU a job may use, so two jobs admitted together
would both start on GPU 0. The Snakefile therefore (1) finds the machine's GPUs at parse time
(`visible_gpus`), (2) caps the `gpu` resource at their number, and (3) hands the pool to the jobs in
`LEUKOSCOPE_GPU_POOL`; each TensorFlow job then claims one id with an exclusive lock file
(`claim_gpu`) and sets `CUDA_VISIBLE_DEVICES` to it before TensorFlow starts. The lock is held by the
process (an open file with `flock`), so a killed job frees its GPU at once, with no stale lock to clean.
Under SLURM the scheduler sets `CUDA_VISIBLE_DEVICES` for the job, and nothing is claimed or changed.

On a CPU-only machine the training jobs share the cores (`train_threads`): each job gets its share as
Snakemake `threads`, and `LEUKOSCOPE_THREADS` makes TensorFlow keep to it instead of using every core.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from leukoscope._io import try_lock
from leukoscope.errors import ConfigError

POOL_ENV = "LEUKOSCOPE_GPU_POOL"
THREADS_ENV = "LEUKOSCOPE_THREADS"
_HELD: list[IO[str]] = []  # claimed locks live as long as the process


def visible_gpus(setting: str = "auto") -> list[str]:
    """GPU ids this machine offers: `none`, ids ("0,1"), or auto (CUDA_VISIBLE_DEVICES, else nvidia-smi)."""
    text = str(setting).strip().lower()
    if text in ("none", "cpu", "0 gpus", ""):
        return []
    if text != "auto":
        ids = [part.strip() for part in text.split(",") if part.strip()]
        if not ids or not all(i.isdigit() for i in ids):
            raise ConfigError(f"train.gpus is {setting!r}", hint="use auto, none, or GPU ids like 0,1")
        return ids
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [part.strip() for part in env.split(",") if part.strip() and part.strip() != "-1"]
    return _nvidia_smi_ids()


def _nvidia_smi_ids() -> list[str]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def train_threads(cores: int | None, gpus: list[str], setting: int | None, cpu_jobs: int) -> int:
    """Threads per training job: the setting; with GPUs a few for the input pipeline; else a share."""
    if setting:
        return int(setting)
    cores = max(1, int(cores or os.cpu_count() or 1))
    if gpus:
        return max(1, min(8, cores // len(gpus)))
    return max(1, cores // max(1, cpu_jobs))


def claim_gpu(lock_dir: str | Path, pool: list[str] | None = None, wait_s: float = 3600.0) -> str | None:
    """Lock one free GPU of the pool and make it this process's only visible GPU; None without GPUs.

    Waits (polling) while every GPU is held, which only happens if more GPU jobs were admitted than
    there are GPUs (a profile that raised the `gpu` resource).
    """
    if os.environ.get("SLURM_JOB_ID"):  # the scheduler decides (CUDA_VISIBLE_DEVICES from --gpus)
        return os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = pool if pool is not None else _pool_from_env()
    if not ids:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # CPU job: never touch a GPU another job holds
        return None
    lock_dir = Path(lock_dir)
    deadline = time.monotonic() + wait_s
    while True:
        for gpu in ids:
            handle = try_lock(lock_dir / f"gpu{gpu}.lock")
            if handle is None:
                continue
            _HELD.append(handle)
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            return gpu
        if time.monotonic() > deadline:
            raise ConfigError(f"no free GPU among {','.join(ids)} after {wait_s:.0f} s", path=lock_dir)
        time.sleep(2.0)


def _pool_from_env() -> list[str]:
    return [part for part in os.environ.get(POOL_ENV, "").split(",") if part]


def share_pool(ids: list[str]) -> None:
    """The Snakefile hands its GPU ids to the jobs it starts (they inherit the environment)."""
    os.environ[POOL_ENV] = ",".join(ids)


def shared_pool() -> list[str]:
    """In a job process that parses the Snakefile again (cluster jobs): the ids the main process found."""
    return _pool_from_env()


@contextlib.contextmanager
def holding(lock_dir: str | Path, pool: list[str]) -> Iterator[str | None]:
    """claim_gpu for a block (tests): the lock is released at the end."""
    gpu = claim_gpu(lock_dir, pool)
    try:
        yield gpu
    finally:
        while _HELD:
            _HELD.pop().close()


def set_threads(threads: int) -> None:
    """Before TensorFlow starts: its thread pools follow the job's `threads` (see train.hardware)."""
    os.environ[THREADS_ENV] = str(max(1, int(threads)))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, int(threads))))
