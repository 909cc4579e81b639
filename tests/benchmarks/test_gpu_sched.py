"""The GPU benchmark's scheduler: a process that fails takes only its own items with it (with its error),
and the deadline skips what no longer fits, saying which process was still compiling."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.gpu_sched import Item, Scheduler  # noqa: E402


def _spec(backbone: str, items: list[str]) -> dict[str, Any]:
    return {
        "backbone": backbone, "size": 32, "policy": "float32", "batch_size": 4, "predict_batch": 4,
        "loss": "focal_hinge", "dry_run": True, "jax_cache": None,
        "phases": [{"item": i, "kind": "train"} for i in items],
    }  # fmt: skip


def test_a_failed_process_takes_only_its_items(tmp_path: Path) -> None:
    saved: list[int] = []
    specs = {"bad": _spec("nonesuch", ["x"])}
    items = [Item("x", "train", 1.0, 0.1), Item("z", "train", 1.0, 0.1)]
    sched = Scheduler(
        tmp_path, specs, items, time.monotonic() + 120.0, lambda r: saved.append(len(r["items"]))
    )
    result = sched.run()
    by_name = {r["name"]: r for r in result["items"]}
    assert by_name["x"]["status"] == "failed" and "nonesuch" in by_name["x"]["reason"]
    assert by_name["z"]["status"] == "skipped" and by_name["z"]["reason"] == "no process measures it"
    assert "nonesuch" in result["processes"]["bad"]["error"] and saved[0] >= 1  # saved after every item


def test_the_deadline_skips_an_item_whose_process_still_compiles(tmp_path: Path) -> None:
    """A process waiting for a compile that never comes: its item is skipped when the budget runs out,
    the scheduler stops within it, and no process outlives the scheduler."""
    specs = {"late": _spec("simplecnn", ["y"]) | {"wait_for": str(tmp_path / "never")}}
    t0 = time.monotonic()
    sched = Scheduler(tmp_path / "sync", specs, [Item("y", "train", 1.0, 0.5)], t0 + 8.0, lambda r: None)
    result = sched.run()
    y = result["items"][0]
    assert (
        y["status"] == "skipped" and y["reason"] == "no time left in the 8 s budget (still compiling: late)"
    )
    assert time.monotonic() - t0 < 8.0 + 15.0  # the deadline, then at most the processes' stop
    assert all(p.poll() is not None for p in sched.procs.values())
