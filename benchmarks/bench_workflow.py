"""Workflow: Snakemake's own share of `make demo`'s wall time, and the time of a rerun with nothing to do.

`make demo` is `leukoscope demo --out demo-output` once the venv is installed; here it runs as
`leukoscope demo --out benchmarks/work/demo` (a fresh folder, so every job runs), the process tree sampled
every 50 ms: a job is a child process of a Snakemake process running one of the workflow's scripts
(every rule is a `script:`, run from `.snakemake/scripts/`); other children of Snakemake (a plugin's
query, say) are its own work. Snakemake's own time = wall time during which no job process was alive:
the demo's and Snakemake's start-up, parsing the Snakefile, building the DAG, checking files,
scheduling, starting jobs, and `--report`. Not in it, because it runs inside each job's process: the
`script:` preamble (importing `snakemake.script` and unpickling the job's `snakemake` object),
measured separately and reported.
Then the same command again (every output up to date) and a bare `snakemake --cores all` in the same
folder: the no-op reruns.

`--tiny` runs the same measurement on the real Snakefile with the demo's config up to the sample sheet
(two jobs, no TensorFlow), so the machinery is proven in seconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import CpuShare, Figure, Settings, log

TARGET = 5.0  # % of the wall time
INTERVAL = 0.05
JOB_MARK = "/.snakemake/scripts/"  # a `script:` job runs Snakemake's copy of the script from here


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, own CPU seconds) of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return ""


def _is_snakemake(cmdline: str) -> bool:
    """`python -m snakemake ...`, or a `snakemake` executable (run directly or by its interpreter)."""
    words = cmdline.split()
    return "-m snakemake" in cmdline or any(Path(w).name == "snakemake" for w in words[:2])


def trace_tree(cmd: list[str], cwd: Path, log_path: Path, timeout: float) -> dict[str, Any]:
    """Run `cmd`; sample which Snakemake processes have job children. Wall, job-covered time, CPU."""
    handle = open(log_path, "w")  # noqa: SIM115
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, env=env)
    stop = threading.Event()
    box: dict[str, Any] = {
        "covered": 0.0,
        "jobs": {},
        "helpers": {},
        "smk_cpu": {},
        "smk": set(),
        "samples": 0,
    }
    names: dict[int, str] = {}

    def sample() -> None:
        last = time.perf_counter()
        busy = False
        while not stop.is_set():
            now = time.perf_counter()
            if busy:
                box["covered"] += now - last
            last = now
            parents: dict[int, int] = {}
            cpu: dict[int, float] = {}
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    info = _stat(int(entry))
                    if info is not None:
                        parents[int(entry)], cpu[int(entry)] = info
            tree = {proc.pid}
            grew = True
            while grew:
                grew = False
                for pid, ppid in parents.items():
                    if ppid in tree and pid not in tree:
                        tree.add(pid)
                        grew = True
            for pid in tree:
                if pid not in names:
                    names[pid] = _cmdline(pid)
            smk = {p for p in tree if _is_snakemake(names[p])}
            box["smk"] |= smk
            for p in smk:
                box["smk_cpu"][p] = cpu.get(p, box["smk_cpu"].get(p, 0.0))
            children = {p for p, pp in parents.items() if pp in smk and p in tree}
            jobs = {p for p in children if JOB_MARK in names[p]}
            for p in children:
                kind = box["jobs"] if p in jobs else box["helpers"]
                first = kind.get(p, (now - t0, 0.0, ""))[0]
                kind[p] = (first, now - t0, names[p][:200])
            busy = bool(jobs)
            box["samples"] += 1
            stop.wait(INTERVAL)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    finally:
        stop.set()
        sampler.join()
        handle.close()
    wall = time.perf_counter() - t0
    spans = sorted(box["jobs"].values())
    start = spans[0][0] if spans else wall
    end = max((s[1] for s in spans), default=wall)
    return {
        "rc": rc,
        "wall_s": wall,
        "jobs_covered_s": box["covered"],
        "snakemake_own_s": max(0.0, wall - box["covered"]),
        "before_first_job_s": start,  # start-up, parsing, DAG, before any job
        "between_jobs_s": max(0.0, (end - start) - box["covered"]),  # no job alive between the first and last
        "after_last_job_s": max(0.0, wall - end),  # finishing (the report, in the demo's second call)
        "job_processes": len(box["jobs"]),
        "jobs": [{"start_s": round(a, 2), "end_s": round(b, 2), "cmd": c} for a, b, c in spans],
        # children of Snakemake that are not jobs: its own work (e.g. a plugin asking SLURM for its config)
        "helpers": [
            {"start_s": round(a, 2), "end_s": round(b, 2), "cmd": c}
            for a, b, c in sorted(box["helpers"].values())
        ],
        "snakemake_processes": len(box["smk"]),
        "snakemake_cpu_s": sum(box["smk_cpu"].values()),
        "samples": box["samples"],
    }


def preamble_seconds(reps: int) -> float:
    """What each `script:` job spends in Snakemake's preamble: importing snakemake.script (median)."""
    import statistics

    times = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import snakemake.script"], check=True)
        import_s = time.perf_counter() - t
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(import_s - (time.perf_counter() - t))
    return max(0.0, statistics.median(times))


def _commands(settings: Settings, folder: Path) -> tuple[list[str], list[str], str]:
    """(the measured command, a bare snakemake no-op in the same folder, what it is)."""
    from leukoscope.workflow import runner

    exe = Path(sys.executable).with_name("leukoscope")
    config = folder / "config.yaml"
    bare = [sys.executable, "-m", "snakemake", "-s", str(runner.snakefile()), "--directory", str(folder),
            "--configfile", str(config), "--cores", "all"]  # fmt: skip
    if not settings.tiny:
        demo = [
            str(exe) if exe.is_file() else sys.executable,
            *([] if exe.is_file() else ["-m", "leukoscope"]),
        ]
        return [*demo, "demo", "--out", str(folder)], bare, "`leukoscope demo` (make demo)"
    import yaml

    from leukoscope._io import write_text
    from leukoscope.cli.demo import demo_config

    folder.mkdir(parents=True, exist_ok=True)
    write_text(config, yaml.safe_dump(demo_config(), sort_keys=False))
    target = "results/samples/summary.json"
    return [*bare, target, "--quiet", "rules"], [*bare, target], f"the demo's workflow up to {target}"


def run(settings: Settings, out_dir: Path) -> tuple[list[Figure], dict[str, Any]]:
    folder = settings.work / ("demo-tiny" if settings.tiny else "demo")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)  # the processes run in it, as `leukoscope demo` runs Snakemake
    runs = settings.work / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    cmd, bare, what = _commands(settings, folder)
    log(f"workflow: {what}, fresh folder {folder}")
    timeout = settings.pick(3600, 600)
    with CpuShare() as share:
        first = trace_tree(cmd, folder, runs / "workflow-first.log", timeout)
    _check(first, runs / "workflow-first.log")
    log(
        f"  {first['wall_s']:.1f} s, {first['job_processes']} jobs, "
        f"Snakemake alone {first['snakemake_own_s']:.1f} s"
    )
    with CpuShare() as rerun_share:
        again = trace_tree(cmd, folder, runs / "workflow-rerun.log", timeout)
    _check(again, runs / "workflow-rerun.log")
    with CpuShare() as bare_share:
        noop = trace_tree(bare, folder, runs / "workflow-noop.log", timeout)
    _check(noop, runs / "workflow-noop.log")
    log(f"  rerun {again['wall_s']:.1f} s ({again['job_processes']} jobs); bare no-op {noop['wall_s']:.1f} s")
    preamble = preamble_seconds(settings.pick(3, 1))
    share_pct = 100 * first["snakemake_own_s"] / first["wall_s"]
    helpers = _helpers(first)
    inside = preamble * first["job_processes"]
    note = (
        f"{what}: {first['wall_s']:.0f} s wall, {first['job_processes']} job processes covering "
        f"{first['jobs_covered_s']:.0f} s, no job alive for {first['snakemake_own_s']:.1f} s (start-up, "
        f"parsing, DAG, file checks, scheduling, the report{helpers}); the Snakemake processes' own CPU "
        f"{first['snakemake_cpu_s']:.1f} s; not counted: the script preamble inside each job "
        f"(import snakemake.script, {preamble:.2f} s measured) = {inside:.0f} s over the jobs, "
        f"{100 * (first['snakemake_own_s'] + inside) / first['wall_s']:.1f}% with it"
    )
    if share_pct >= TARGET:
        note += (
            f". Over {TARGET:.0f}%: {first['before_first_job_s']:.1f} s before the first job (start-up, "
            f"parsing the Snakefile, the DAG), {first['between_jobs_s']:.1f} s between jobs (scheduling, "
            f"output checks, a second Snakemake call), {first['after_last_job_s']:.1f} s after the last one; "
            f"a bare no-op Snakemake call here takes {noop['wall_s']:.1f} s"
        )
    figures = [
        Figure(
            "workflow",
            "Snakemake's own share of make demo's wall time",
            share_pct,
            "%",
            target=f"< {TARGET:.0f}%",
            met=share_pct < TARGET,
            note=note,
            details=first,
            cpu=share.result,
        ),
        Figure(
            "workflow",
            "make demo wall time (fresh folder)",
            first["wall_s"],
            "s",
            note=f"{what}, every job run",
            cpu=share.result,
        ),
        Figure(
            "workflow",
            "no-op rerun: make demo again",
            again["wall_s"],
            "s",
            baseline=first["wall_s"],
            ratio=first["wall_s"] / again["wall_s"],
            note=f"the same command, every output up to date: {again['job_processes']} job processes; "
            "ratio = first run / rerun",
            details=again,
            cpu=rerun_share.result,
        ),
        Figure(
            "workflow",
            "no-op rerun: bare snakemake --cores all",
            noop["wall_s"],
            "s",
            note=f"Snakemake alone in the finished folder (parse, DAG, file checks{_helpers(noop)}): "
            f"{noop['job_processes']} job processes, its own CPU {noop['snakemake_cpu_s']:.1f} s",
            details=noop,
            cpu=bare_share.result,
        ),
    ]
    return figures, {
        "folder": str(folder),
        "first": first,
        "rerun": again,
        "noop": noop,
        "preamble_s": preamble,
    }


def _helpers(res: dict[str, Any]) -> str:
    """', of which <command> N x S s' for the non-job children of Snakemake, grouped by command."""
    groups: dict[str, list[float]] = {}
    for h in res.get("helpers", []):
        groups.setdefault(h["cmd"].strip()[:60], []).append(h["end_s"] - h["start_s"])
    parts = [f"`{cmd}` {len(d)} x {sum(d) / len(d):.1f} s" for cmd, d in groups.items()]
    return f", of which child processes Snakemake started for itself: {', '.join(parts)}" if parts else ""


def _check(res: dict[str, Any], log_path: Path) -> None:
    if res["rc"] != 0:
        tail = log_path.read_text(errors="replace")[-3000:] if log_path.is_file() else ""
        raise RuntimeError(f"workflow run failed (rc {res['rc']}); log {log_path}:\n{tail}")
