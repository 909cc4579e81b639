"""Hardware ceiling: what this CPU does on its best case (a large matmul), and how close each model gets.

Model FLOPs come from `torch.utils.flop_counter.FlopCounterMode` (2 FLOPs per multiply-add; convolutions
and matmuls, which are nearly all of the work). Training FLOPs are counted on a real forward + backward
(about 3x forward). Achieved GFLOP/s = FLOPs per image x images/s measured by the train and infer
benchmarks of the same run (read from their JSON), as a fraction of the matching-precision ceiling.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import CpuShare, Figure, Settings, log

MODELS = {"tf_efficientnet_lite0": 224, "efficientnet_b2": 260}


def matmul_gflops(n: int, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """Best sustained GFLOP/s of an n x n x n matmul, all threads."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    out = torch.empty(n, n, dtype=dtype)
    for _ in range(2):
        torch.matmul(a, b, out=out)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        reps = 0
        t0 = time.perf_counter()
        while reps < 3 or time.perf_counter() - t0 < 0.2:
            torch.matmul(a, b, out=out)
            reps += 1
        dt = time.perf_counter() - t0
        best = max(best, 2 * n**3 * reps / dt / 1e9)
    return best


def model_flops(backbone: str, size: int) -> dict[str, float]:
    """Forward FLOPs per image, and training FLOPs taken as 3x forward.

    The counter's own backward figure is kept for reference only: torch 2.14's `conv_backward_flop`
    ignores `groups`, so it counts every depthwise convolution's backward as a dense one (~40x too high
    for EfficientNets).
    """
    from torch.utils.flop_counter import FlopCounterMode

    from leukoscope.models.factory import create_classifier

    model = create_classifier(backbone, 2, weights="none")
    x = torch.randn(2, 3, size, size)
    model.eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    fwd = fc.get_total_flops() / 2
    model.train()
    with FlopCounterMode(display=False) as fc:
        model(x).sum().backward()
    counted = fc.get_total_flops() / 2
    return {"forward": float(fwd), "train": 3.0 * float(fwd), "counter_train_raw": float(counted)}


def _load(out_dir: Path, name: str) -> dict[str, Any] | None:
    path = out_dir / f"{name}.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None


def _rate(doc: dict[str, Any] | None, figure: str) -> tuple[float | None, float | None, dict]:
    """(leukoscope value, baseline value, cpu) of the named figure, or Nones."""
    if not doc:
        return None, None, {}
    for f in doc.get("figures", []):
        if f.get("name") == figure:
            return f.get("value"), f.get("baseline"), f.get("cpu", {})
    return None, None, {}


def run(settings: Settings, out_dir: Path) -> tuple[list[Figure], dict[str, Any]]:
    sizes = settings.pick([2048, 4096], [256])
    seconds = settings.pick(2.0, 0.3)
    figures: list[Figure] = []
    ceiling: dict[str, float] = {}
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        for n in sizes:
            with CpuShare() as share:
                g = matmul_gflops(n, dtype, seconds)
            log(f"matmul {label} {n}: {g:.0f} GFLOP/s")
            ceiling[label] = max(ceiling.get(label, 0.0), g)
            figures.append(
                Figure(
                    "ceiling",
                    f"matmul {label} {n}x{n}, {torch.get_num_threads()} threads",
                    g,
                    "GFLOP/s",
                    cpu=share.result,
                )
            )
    bf16_speedup = ceiling["bf16"] / ceiling["fp32"] if ceiling.get("fp32") else None
    figures.append(
        Figure(
            "ceiling",
            "matmul bf16 / fp32 ceiling",
            bf16_speedup,
            "x",
            note="AMX/AVX-512 BF16 headroom: the most bf16 autocast can give a matmul-bound model",
        )
    )

    train_doc, infer_doc = _load(out_dir, "train"), _load(out_dir, "infer")
    flops: dict[str, dict[str, float]] = {}
    for backbone, size in settings.models(MODELS).items():
        flops[backbone] = model_flops(backbone, size)
        fl = flops[backbone]
        figures.append(
            Figure(
                "ceiling",
                f"{backbone} @{size}: GFLOPs per image (forward / train)",
                fl["forward"] / 1e9,
                "GFLOP",
                details={
                    "train_gflop": fl["train"] / 1e9,
                    "counter_train_raw_gflop": fl["counter_train_raw"] / 1e9,
                },
                note=f"training taken as 3x forward = {fl['train'] / 1e9:.2f} GFLOP (FlopCounterMode's "
                "backward ignores conv groups, so its own figure is not used)",
            )
        )
        sources = [
            (train_doc, f"{backbone} @{size} train images/s", "train", "bf16", "fp32"),
            (infer_doc, f"{backbone} @{size} torch bf16 batch 32", "forward", "bf16", "fp32"),
            (infer_doc, f"{backbone} @{size} torch bf16 compiled batch 32", "forward", "bf16", None),
        ]
        for doc, fig_name, kind, prec, base_prec in sources:
            value, baseline, cpu = _rate(doc, fig_name)
            if value is None:
                continue
            who_label = "leukoscope compiled" if "compiled" in fig_name else "leukoscope"
            for who, rate, p in ((who_label, value, prec), ("baseline", baseline, base_prec)):
                if rate is None or p is None:  # the compiled row shares its fp32 baseline with the eager one
                    continue
                achieved = rate * fl[kind] / 1e9
                figures.append(
                    Figure(
                        "ceiling",
                        f"{backbone} {'train' if kind == 'train' else 'inference b32'} {who} ({p})",
                        achieved,
                        "GFLOP/s",
                        baseline=ceiling[p],
                        ratio=achieved / ceiling[p],
                        note=f"{100 * achieved / ceiling[p]:.1f}% of the {p} matmul ceiling",
                        cpu=cpu,
                    )
                )
    return figures, {"ceiling_gflops": ceiling, "model_flops": flops}
