"""Where the time goes: torch.profiler self-CPU time grouped into a few readable kinds of work.

Used to write the measured reason next to a figure that misses its target, instead of a guess.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

KINDS: list[tuple[str, tuple[str, ...]]] = [
    ("convolution", ("conv", "mkldnn_convolution", "onednn")),
    ("matmul/linear", ("addmm", "aten::mm", "bmm", "linear", "matmul")),
    ("batch norm", ("batch_norm", "native_batch_norm")),
    ("activation", ("silu", "relu", "hardswish", "sigmoid", "gelu", "hardtanh", "clamp")),
    ("dtype casts/copies", ("aten::to", "_to_copy", "copy_", "contiguous", "clone")),
    (
        "elementwise",
        ("aten::add", "aten::mul", "aten::div", "aten::sub", "aten::fill", "aten::zero", "where"),
    ),
    ("optimizer", ("adam", "_foreach", "optimizer")),
    ("pooling/reduction", ("mean", "avg_pool", "sum", "adaptive")),
    (
        "data (augment/normalise)",
        ("rotate", "affine", "grid_sample", "flip", "normalize", "from_numpy", "permute"),
    ),
]


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, keys in KINDS:
        if any(k in low for k in keys):
            return kind
    return "other"


def breakdown(events: Any, top_ops: int = 8) -> dict[str, Any]:
    """Self CPU time per kind (percent) and the top individual ops, from `prof.key_averages()`."""
    total = 0.0
    kinds: dict[str, float] = {}
    ops: list[tuple[str, float]] = []
    for ev in events:
        t = float(ev.self_cpu_time_total)
        if t <= 0:
            continue
        total += t
        kinds[kind_of(ev.key)] = kinds.get(kind_of(ev.key), 0.0) + t
        ops.append((ev.key, t))
    if total <= 0:
        return {"kinds": {}, "ops": []}
    kinds_pct = {k: round(100 * v / total, 1) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])}
    ops.sort(key=lambda kv: -kv[1])
    return {"kinds": kinds_pct, "ops": [(k, round(100 * v / total, 1)) for k, v in ops[:top_ops]]}


def profile_calls(fn: Callable[[], Any], calls: int = 3) -> dict[str, Any]:
    """Profile `calls` calls of `fn` (after one unprofiled warm-up call)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    return breakdown(prof.key_averages())


def summary(result: dict[str, Any], n: int = 3, ops: int = 0) -> str:
    """'convolution 61%, batch norm 12%, activation 9%' for a note (+ the top `ops` single ops)."""
    parts = [f"{k} {v:.0f}%" for k, v in list(result.get("kinds", {}).items())[:n]]
    text = ", ".join(parts)
    if ops and result.get("ops"):
        text += " (top ops: " + ", ".join(f"{k} {v:.0f}%" for k, v in result["ops"][:ops]) + ")"
    return text
