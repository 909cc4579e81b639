"""The GPU benchmark's scheduler: a process that fails takes only its own items with it (with its error),
and the deadline skips what no longer fits, saying which process was still compiling."""

from __future__ import annotations

import math
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


def _partial_result() -> dict[str, Any]:
    """What a real run may bring back: one item measured beside a compile, failures, skips, no TF."""
    proc = {"backbone": "efficientnetb2", "size": 260, "policy": "float32", "first_step_s": 80.0,
            "predict_first_s": 20.0}  # fmt: skip
    job = {"images_per_s": 1000.0, "steps": 250}
    return {
        "dry_run": False, "backend": "jax", "tensorflow_installed": False, "gpus": ["NVIDIA H200"],
        "batch_size": 32, "predict_batch": 256, "loss": "focal_hinge", "budget_s": 430.0,
        "processes": {"b2_fp32_a": proc, "b2_fp32_b": proc, "b2_bf16": proc | {"policy": "mixed_bfloat16"},
                      "dn_fp32": {"backbone": "densenet201", "size": 224, "policy": "float32"}},
        "items": [
            {"name": "b2_fp32", "kind": "train", "status": "ok", "others_busy": ["dn_fp32"], "window_s": 8,
             "jobs": {"b2_fp32_a": job}, "aggregate_images_per_s": 1000.0},
            {"name": "b2_bf16", "kind": "train", "status": "failed", "reason": "process b2_bf16 failed: x"},
            {"name": "share2", "kind": "train", "status": "ok", "others_busy": [], "window_s": 10,
             "jobs": {"b2_fp32_a": job, "b2_fp32_b": job | {"images_per_s": 800.0}},
             "aggregate_images_per_s": 1800.0},
            {"name": "share3", "kind": "train", "status": "skipped", "reason": "no time left"},
            {"name": "dn_fp32", "kind": "train", "status": "failed", "reason": "process dn_fp32 failed"},
            {"name": "b2_fp32_predict", "kind": "predict", "status": "ok", "others_busy": [], "window_s": 5,
             "jobs": {"b2_fp32_a": {"images_per_s": None, "steps": 1}}, "aggregate_images_per_s": None},
        ],
    }  # fmt: skip


def test_figures_and_the_readme_table_from_a_partial_result() -> None:
    from benchmarks.gpu_import import summary_table

    from benchmarks import gpu_figures as G

    res = _partial_result()
    res["input_projection"] = G.input_projection(res)
    figures = G.train_figures(res, {}) + G.pipeline_figures(res, {}) + G.projection_figures(res, dry=False)
    by_name = {f.name: f for f in figures}
    fp32 = by_name["efficientnetb2 @260 float32 train images/s"]
    assert fp32.value == 1000.0 and "measured while dn_fp32 still compiled" in fp32.note
    share = by_name["2 x efficientnetb2 @260 float32 sharing one GPU: train images/s together"]
    assert share.ratio == 1.8 and "1000, 800 images/s each" in share.note
    assert by_name["input pipeline (tf.data) on this machine"].value is None
    if "per_core_images_per_s" in res["input_projection"]:  # benchmarks/results/input.json is committed
        row = next(f for n, f in by_name.items() if n.startswith("input pipeline per job, projected"))
        assert row.baseline == 1000.0 and "assumes the rate grows with cores" in row.note
    assert by_name["Table 2 grid projection"].value is None  # densenet201 and the predict rate missing
    table = summary_table(res)
    assert "| efficientnetb2 @260 | float32 | 1,000 | – | 80 s |" in table
    assert "1,000 + 800 = 1,800 (1.80x one job)" in table
    assert "b2_fp32 (while dn_fp32 compiled)" in table and "dn_fp32: failed" in table


def test_table2_hours_from_a_full_result() -> None:
    from benchmarks import gpu_figures as G

    res = _partial_result()
    ok = {"status": "ok", "others_busy": [], "window_s": 5}
    res["items"] = [i for i in res["items"] if i["name"] in ("b2_fp32", "share2")] + [
        {"name": "dn_fp32", "kind": "train", **ok, "jobs": {"dn_fp32": {}}, "aggregate_images_per_s": 800.0},
        {"name": "dn_fp32_predict", **ok, "jobs": {"dn_fp32": {}}, "aggregate_images_per_s": 5000.0},
        {"name": "b2_fp32_predict", **ok, "jobs": {"b2_fp32_a": {}}, "aggregate_images_per_s": 6000.0},
    ]
    res["processes"]["dn_fp32"] |= {"first_step_s": 225.0}
    backbones, losses, epochs, samples = G.grid()
    figs = {f.name: f for f in G.projection_figures(res, dry=False)}
    one = figs["Table 2 grid on one GPU (projected)"]
    dense = (epochs * (samples / 800.0 + G.VAL_IMAGES / 5000.0) + 225.0) / 3600
    b2 = (epochs * (samples / 1000.0 + G.VAL_IMAGES / 6000.0) + 80.0) / 3600
    assert set(backbones) == {"densenet201", "efficientnetb2"}
    assert math.isclose(one.value, len(losses) * (dense + b2), rel_tol=1e-9)
    shared = figs["Table 2 grid on one GPU, 2 jobs at a time (projected)"]
    assert math.isclose(shared.value, one.value / 1.8) and shared.ratio == 1.8
