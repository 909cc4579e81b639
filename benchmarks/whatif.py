"""Measured alternatives that leukoscope does not use (yet), so a missed target comes with a tested fix.

- training: depthwise convolutions kept in fp32 inside bf16 autocast. On AVX-512 BF16 / AMX CPUs oneDNN's
  bf16 depthwise-convolution *backward* is several times slower than its fp32 channels_last one, and
  EfficientNets are mostly depthwise convolutions.
- inference: `torch.jit.trace` + `torch.jit.freeze` under bf16 autocast (folds batch norm into the
  convolutions and fuses activations).
"""

from __future__ import annotations

import time

import torch
from torch import nn


class Fp32Depthwise(nn.Module):
    """Run a depthwise convolution in fp32 (channels_last) even inside bf16 autocast."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.conv(x.float())


def depthwise_in_fp32(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d) and child.groups > 1 and child.groups == child.in_channels:
            setattr(module, name, Fp32Depthwise(child))
        else:
            depthwise_in_fp32(child)
    return module


def train_step_seconds(backbone: str, size: int, batch: int, steps: int, dw_fp32: bool) -> float:
    """Median seconds of a bf16-autocast, channels_last training step on a fixed random batch."""
    from leukoscope.models.factory import create_classifier

    torch.manual_seed(0)
    model = create_classifier(backbone, 2, weights="none").train()
    if dw_fp32:
        depthwise_in_fp32(model)
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = (torch.rand(batch) > 0.5).float()
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)

    def step() -> None:
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        nn.functional.binary_cross_entropy_with_logits(out.float(), y).backward()
        opt.step()

    step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]
