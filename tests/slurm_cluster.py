"""A real one-node SLURM on localhost (two fake GPUs) for the cluster-profile tests.

`local_slurm()` installs Debian's packages when missing, starts munged, slurmctld and slurmd through
`scripts/slurm-local.sh`, and always stops them by the PIDs it recorded (also at interpreter exit, so the
daemons never outlive the tests). `SKIP_REASON` is set only where the packages cannot be installed or run.
`snakemake_on_slurm()` runs Snakemake with `profiles/slurm` plus the two settings this cluster needs
(no accounting database: status from squeue, no account), under `timeout -k`: the plugin can hang.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm-local.sh"
PROFILE = REPO / "profiles" / "slurm"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
STATE = Path(os.environ.get("LEUKOSCOPE_SLURM_STATE", "/var/lib/leukoscope-slurm"))
# What this test cluster lacks compared with a production one (see profiles/slurm/config.yaml).
CLUSTER_ARGS = (
    "--slurm-status-command", "squeue", "--slurm-no-account",
    "--slurm-init-seconds-before-status-checks", "5",
)  # fmt: skip
# Fewer, larger SLURM jobs for the test's sake (each costs Snakemake 7-10 s of start-up and a status poll):
# the CPU stages as one job, a grid cell's training and prediction as one GPU job.
GROUPS = (
    "--groups",
    *(f"{r}=prep" for r in ("samples", "crop", "augment", "stats")),
    "train=model",
    "predict=model",
)
TRAIN_LOG = "results/logs/train/simplecnn/bce/seed_42.log"
MODEL = "results/models/simplecnn/bce/seed_42/model.keras"
STATE_ROOT = "results/.state/train/simplecnn/bce/seed_42"
# The whole chain in a few minutes (.test/config/tiny.yaml says how): one simplecnn x bce job, ten epochs.
TINY_CONFIG = REPO / ".test" / "config" / "tiny.yaml"
TINY = yaml.safe_load(TINY_CONFIG.read_text(encoding="utf-8"))


def write_tiny_config(workdir: Path, **train: object) -> Path:
    """.test/config/tiny.yaml (with these `train` settings changed) as workdir/tiny.yaml."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "tiny.yaml"
    config = {**TINY, "train": {**TINY["train"], **train}}
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    return path


def wait_for_epoch(
    workdir: Path, epochs: int, timeout: float = 180.0, proc: subprocess.Popen | None = None
) -> int:
    """Block until the training job's resume state holds `epochs` complete epochs; that count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for state in (workdir / STATE_ROOT).glob("*/state.json"):
            with contextlib.suppress(OSError, ValueError):
                done = int(json.loads(state.read_text(encoding="utf-8"))["next_epoch"])
                if done >= epochs:
                    return done
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"snakemake ended (rc {proc.returncode}) before epoch {epochs} was saved\n{run_logs(workdir)}"
            )
        time.sleep(0.05)
    raise TimeoutError(
        f"no resume state with {epochs} epochs under {workdir / STATE_ROOT} after {timeout:.0f} s"
    )


def run_logs(workdir: Path, chars: int = 3000) -> str:
    """The tails of every log a failed run left (Snakemake's, each SLURM job's, each job's own): a CI
    failure must carry its cause, since CI's machine is gone once it has printed."""
    logs = [
        *sorted(workdir.glob("snakemake-*.log")),
        *sorted((workdir / ".snakemake/slurm_logs").rglob("*.log")),
        *sorted((workdir / "results/logs").rglob("*.log")),
    ]
    parts = [
        f"--- {log.relative_to(workdir)} ---\n{log.read_text(errors='replace')[-chars:]}" for log in logs
    ]
    return "\n".join(parts) or f"(no logs under {workdir})"


def model_weights(path: Path) -> list:
    """The arrays of a saved model, in layer order (loaded in a subprocess-free way: Keras in this one)."""
    import leukoscope.models.layers  # noqa: F401  (registered layers)
    from leukoscope.models.card import load_keras

    return [w for w in load_keras(path).get_weights()]


def _skip_reason() -> str | None:
    if sys.platform != "linux":
        return "a local SLURM needs Linux"
    if os.geteuid() != 0:
        return "starting SLURM daemons needs root"
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        return "no SLURM and no apt-get to install Debian's slurmctld/slurmd/slurm-client/munge"
    return None


SKIP_REASON = _skip_reason()


def _script(action: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), action], capture_output=True, text=True, timeout=timeout)


def install() -> str | None:
    """Debian's packages in place (installed when missing); the reason they are not, else None."""
    if SKIP_REASON is not None:
        return SKIP_REASON
    try:
        installed = _script("install", timeout=600)
    except subprocess.TimeoutExpired:
        return "installing Debian's SLURM packages took over 10 minutes"
    if installed.returncode != 0:
        return f"Debian's SLURM packages cannot be installed here: {installed.stderr.strip()[-300:]}"
    return None


@contextlib.contextmanager
def local_slurm() -> Iterator[None]:
    """The cluster up for the block (RuntimeError when it does not come up); stopped by PID after it."""
    atexit.register(_script, "stop")  # even if the test process is interrupted
    started = _script("start", timeout=120)
    if started.returncode != 0:
        _script("stop")
        raise RuntimeError(f"the local SLURM did not start: {started.stderr.strip()[-500:]}")
    try:
        yield
    finally:
        _cancel_all()
        _script("stop")


def _cancel_all() -> None:
    """Jobs left by a failed test would hold the fake GPUs: cancel every job, wait until none runs."""
    subprocess.run(["scancel", "--full", "--user", "root"], capture_output=True, timeout=30)
    for _ in range(60):
        if not squeue():
            return
        time.sleep(0.5)


def job_records(workdir: Path) -> list[dict[str, str]]:
    """Every job SLURM still remembers (MinJobAge) that ran in `workdir`, oldest first, as key=value dicts."""
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True, timeout=30)
    records = []
    for line in out.stdout.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if fields.get("WorkDir") == str(workdir):
            records.append(fields)
    return sorted(records, key=lambda r: int(r.get("JobId", "0")))


def squeue(*fields: str) -> list[list[str]]:
    """Active jobs: one row per job with the given squeue fields (default id, name, state)."""
    fmt = "|".join(fields or ("%i", "%j", "%T"))
    out = subprocess.run(
        ["squeue", "-h", "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING", "-o", fmt],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return [line.split("|") for line in out.stdout.splitlines() if line.strip()]


def snakemake_on_slurm(
    workdir: Path, *args: str, timeout: float = 240, background: bool = False
) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    """`snakemake --workflow-profile profiles/slurm` in `workdir`; output in workdir/snakemake-*.log."""
    cmd = [
        "timeout", "-k", "15", str(int(timeout)), str(SNAKEMAKE),
        "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--workflow-profile", str(PROFILE), *CLUSTER_ARGS, *args,
    ]  # fmt: skip
    # as on a login node: no GPU of this process's (another test's claimed GPU id must not leak in)
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "CUDA_VISIBLE_DEVICES" and not k.startswith("LEUKOSCOPE_GPU")
    }
    env |= {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    log = open(workdir / f"snakemake-{time.strftime('%H%M%S')}-{os.getpid()}.log", "a")  # noqa: SIM115
    if background:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env, cwd=workdir)
    with log:
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env, cwd=workdir)
    return done


def kill_run(proc: subprocess.Popen[str], workdir: Path) -> list[int]:
    """SIGKILL to a whole Snakemake run: its process group and every process started for `workdir`."""
    victims = {proc.pid}
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if str(workdir).encode() in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
                victims.add(int(entry.name))
    proc.wait(timeout=30)
    return sorted(victims)
