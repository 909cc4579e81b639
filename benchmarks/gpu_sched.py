"""The GPU benchmark's scheduler: its processes compile side by side, then measure one item at a time.

XLA compiles of the measured networks take 69-330 s each on an H200 machine, longer than all the
measuring, so every process (`gpu_job.py`) compiles at once and then waits at a barrier; this module
releases the items (one configuration alone, or N processes sharing the GPU over the same window) one
after another, so compiles overlap but measurements do not. An item is released when its processes are
ready and no other process is still compiling, or when waiting longer would leave no time for the items
left before the deadline; each item records which processes were still busy while it was measured.
Results are saved after every item (`save`), and the deadline skips what no longer fits, saying why.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JOB = Path(__file__).resolve().with_name("gpu_job.py")
BUSY = ("starting", "preparing")  # compiling, importing or building: CPU and (autotuning) GPU time
MARGIN_S = 3.0  # per item: the go files, the processes' start, the done files


@dataclass
class Item:
    """One measurement: `members` = (process, phase index) measured together over one window."""

    name: str
    kind: str  # train | predict | pipeline
    window_s: float
    warm_s: float
    members: list[tuple[str, int]] = field(default_factory=list)
    optional: bool = False  # measured only when quiet and time is left (never forces others)
    repeat_of: str | None = None  # optional re-measure, only if that item ran beside busy processes
    timeout_s: float = 120.0

    def cost(self) -> float:
        return self.warm_s + self.window_s + MARGIN_S


class Scheduler:
    def __init__(
        self,
        folder: Path,
        specs: dict[str, dict[str, Any]],
        items: list[Item],
        deadline: float,
        save: Callable[[dict[str, Any]], None],
        env: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder, self.specs, self.items, self.deadline = folder, specs, items, deadline
        self.save, self.env, self.now = save, env, clock
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.budget_s = deadline - clock()
        self.result: dict[str, Any] = {"items": [], "processes": {}}
        for item in items:
            item.members = [
                (name, k)
                for name, spec in specs.items()
                for k, phase in enumerate(spec["phases"])
                if phase["item"] == item.name
            ]

    # -- files ----------------------------------------------------------------------------------------

    def _json(self, path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def state(self, name: str) -> str:
        doc = self._json(self.folder / f"{name}.state") or {"state": "starting"}
        return str(doc["state"])

    def failed(self, name: str) -> str | None:
        """Why a process can no longer measure (its error, or its exit), else None."""
        err = self._json(self.folder / f"{name}.error")
        if err:
            return err["error"]
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is not None and self.state(name) != "finished":
            return f"exited with code {proc.returncode} (its log: {self.folder / f'{name}.log'})"
        return None

    def ready(self, item: Item) -> bool:
        return all((self.folder / f"{n}.{k}.ready").is_file() for n, k in item.members)

    def busy(self, exclude: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
        return [
            n
            for n, p in self.procs.items()
            if n not in exclude and p.poll() is None and self.state(n) in BUSY
        ]

    def order(self, item: Item, data: dict[str, Any]) -> None:
        for name, k in item.members:
            path = self.folder / f"{name}.{k}.go"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(path)

    # -- the run --------------------------------------------------------------------------------------

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, spec in self.specs.items():
            spec_path = self.folder / f"{name}.spec.json"
            spec_path.write_text(json.dumps(spec | {"name": name, "sync_dir": str(self.folder)}, indent=1))
            log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115  (the child writes it)
            self.procs[name] = subprocess.Popen(
                [sys.executable, str(JOB), str(spec_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    def run(self) -> dict[str, Any]:
        self.start()
        pending = list(self.items)
        try:
            while pending:
                pending = self.step(pending)
        finally:
            self.stop()
        self.collect()
        self.save(self.result)
        return self.result

    def step(self, pending: list[Item]) -> list[Item]:
        """Resolve what can be resolved now (measure one item, or skip some); the items still pending."""
        left = self.deadline - self.now()
        for item in list(pending):
            why = self.why_not(item, left, {i.name for i in pending})
            if why is not None:
                status = "failed" if why.startswith("process ") else "skipped"
                self.skip(item, why, "unneeded" if why.startswith("not needed") else status)
                pending.remove(item)
        if not pending:
            return pending
        needed = sum(i.cost() for i in pending if not i.optional)
        for item in pending:
            if not self.ready(item):
                continue
            members = {n for n, _ in item.members}
            quiet = not self.busy(members)
            if quiet or (not item.optional and left <= needed + 5.0):
                self.measure(item)
                pending.remove(item)
                return pending
        time.sleep(0.2)
        return pending

    def why_not(self, item: Item, left: float, pending: set[str]) -> str | None:
        """A reason this item can never run now, else None."""
        for name, _ in item.members:
            failure = self.failed(name)
            if failure is not None:
                return f"process {name} failed: {failure}"
        if not item.members:
            return "no process measures it"
        if item.repeat_of is not None and item.repeat_of not in pending:
            first = next((r for r in self.result["items"] if r["name"] == item.repeat_of), None)
            if first is None or first["status"] != "ok":
                return f"{item.repeat_of} was not measured"
            if not first["others_busy"]:
                return f"not needed: {item.repeat_of} was measured with no other process busy"
        if left < item.cost():
            busy = [n for n, k in item.members if not (self.folder / f"{n}.{k}.ready").is_file()]
            still = f" (still compiling: {', '.join(busy)})" if busy else ""
            return f"no time left in the {self.budget_s:.0f} s budget{still}"
        return None

    def skip(self, item: Item, reason: str, status: str = "skipped") -> None:
        self.order(item, {"skip": True, "reason": reason})
        self.result["items"].append(
            {"name": item.name, "kind": item.kind, "status": status, "reason": reason}
        )
        self.save(self.result)

    def measure(self, item: Item) -> None:
        members = {n for n, _ in item.members}
        busy_before = self.busy(members)
        start_at = time.time() + 0.5
        self.order(
            item,
            {"start_at": start_at, "end_at": start_at + item.warm_s + item.window_s, "warm_s": item.warm_s},
        )
        done: dict[str, Any] = {}
        limit = self.now() + item.warm_s + item.window_s + item.timeout_s
        failure = None
        while len(done) < len(item.members) and self.now() < limit and failure is None:
            for name, k in item.members:
                doc = self._json(self.folder / f"{name}.{k}.done")
                if doc is not None:
                    done[name] = doc
            failure = next((f for n, _ in item.members if n not in done and (f := self.failed(n))), None)
            time.sleep(0.1)
        busy = sorted(set(busy_before) | set(self.busy(members)))
        record: dict[str, Any] = {
            "name": item.name,
            "kind": item.kind,
            "others_busy": busy,
            "window_s": item.window_s,
            "jobs": done,
        }
        if len(done) < len(item.members):
            record |= {"status": "failed", "reason": failure or "no result within the item's time limit"}
        else:
            rates = [d.get("images_per_s") for d in done.values()]
            record["status"] = "ok"
            if all(r is not None for r in rates):
                record["aggregate_images_per_s"] = sum(rates)  # type: ignore[arg-type]
        rate = record.get("aggregate_images_per_s")
        note = f" {rate:.1f} images/s" if rate else ""
        note += f" (busy meanwhile: {', '.join(busy)})" if busy else ""
        print(f"[gpu] {item.name}: {record['status']}{note}", file=sys.stderr, flush=True)
        self.result["items"].append(record)
        self.collect()
        self.save(self.result)

    def collect(self) -> None:
        """Each process's configuration and its compile times (what its latest ready file says)."""
        for name, spec in self.specs.items():
            info = self._json(self.folder / f"{name}.compiled") or {}
            for k in range(len(spec["phases"])):
                info |= self._json(self.folder / f"{name}.{k}.ready") or {}
            keep = ("backbone", "size", "policy", "batch_size", "wait_for")
            self.result["processes"][name] = (
                {k: spec.get(k) for k in keep} | info | {"error": self.failed(name)}
            )

    def stop(self) -> None:
        (self.folder / "stop").write_text("")
        end = self.now() + 10.0
        while self.now() < end and any(p.poll() is None for p in self.procs.values()):
            time.sleep(0.1)
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the process and its threads
                proc.wait()
