"""Run a command in a subprocess and measure its peak memory and the time it took.

RSS splits into anonymous memory (heap, tensors: what a run really needs) and file-backed pages (the
memory-mapped shards, shared libraries: clean pages the kernel drops and re-reads under memory
pressure); both peaks are sampled from /proc/<pid>/status.

Peak RSS is the largest VmHWM (the resident high-water mark of a process's own address space, file-backed
memmap pages included) sampled over the tree: a counter the kernel keeps, cheap to read. Not
`ru_maxrss`: Linux carries the parent's high-water mark through fork + exec, so a child of a large
benchmark process would report the parent's peak (`ru_maxrss_gib` is kept beside it for reference).

With `pss=True` the tree's total is also sampled from /proc/<pid>/smaps_rollup as PSS, which splits
pages shared between processes instead of counting them twice. It is off by default: reading
smaps_rollup walks the process's page tables under its memory-map lock (3.3 ms per read of a 4 GiB
process here, 25x a status read); four times a second beside a DenseNet201 job (7 GB resident) the
sampler thread used ~30% of a core on average, in the measured job's way.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import _descendants


def _pss_kib(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def _status_kib(pid: int, field: str = "VmRSS") -> int:
    """A memory line of /proc/<pid>/status: VmRSS = RssAnon (heap, tensors) + RssFile (mapped files,
    e.g. memory-mapped shards: clean pages the kernel can drop and re-read) + RssShmem."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    return 0


def run_measured(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 3600,
    log_path: Path | None = None,
    interval: float = 0.25,
    pss: bool = False,
) -> dict[str, Any]:
    """Run `cmd`; return rc, seconds, peak RSS of its largest process and peak PSS of its whole tree."""
    out = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    peak = {"tree_pss_kib": 0, "tree_rss_kib": 0, "tree_anon_kib": 0, "main_anon_kib": 0, "main_file_kib": 0}
    peak["hwm_kib"] = 0
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            pids = [proc.pid, *_descendants(proc.pid)]
            if pss:
                peak["tree_pss_kib"] = max(peak["tree_pss_kib"], sum(_pss_kib(p) for p in pids))
            peak["tree_rss_kib"] = max(peak["tree_rss_kib"], sum(_status_kib(p) for p in pids))
            peak["tree_anon_kib"] = max(peak["tree_anon_kib"], sum(_status_kib(p, "RssAnon") for p in pids))
            peak["main_anon_kib"] = max(peak["main_anon_kib"], _status_kib(proc.pid, "RssAnon"))
            peak["main_file_kib"] = max(peak["main_file_kib"], _status_kib(proc.pid, "RssFile"))
            peak["hwm_kib"] = max([peak["hwm_kib"], *(_status_kib(p, "VmHWM") for p in pids)])
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rc, rusage = None, None
    try:
        deadline = time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                rc, rusage = os.waitstatus_to_exitcode(status), ru
                break
            if time.monotonic() > deadline:
                proc.kill()
                _, status, rusage = os.wait4(proc.pid, 0)
                rc = -9
                break
            time.sleep(0.05)
    finally:
        stop.set()
        sampler.join()
        proc.returncode = rc
        if log_path:
            out.close()  # type: ignore[union-attr]
    return {
        "rc": rc,
        "seconds": time.perf_counter() - t0,
        "max_rss_gib": peak["hwm_kib"] / 2**20 if peak["hwm_kib"] else None,
        "ru_maxrss_gib": (rusage.ru_maxrss / 2**20) if rusage else None,
        "tree_pss_gib": peak["tree_pss_kib"] / 2**20 if pss else None,
        "tree_rss_gib": peak["tree_rss_kib"] / 2**20,
        "anon_gib": peak["main_anon_kib"] / 2**20,  # sampled peak RssAnon of the main process
        "file_gib": peak["main_file_kib"] / 2**20,  # sampled peak RssFile (memmap pages etc.)
        "tree_anon_gib": peak["tree_anon_kib"] / 2**20,
    }
