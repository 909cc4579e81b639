"""Pick the fastest numerically safe precision for where training runs, and parse device options."""

from __future__ import annotations

import torch

from leukoscope.errors import ConfigError

_EXPLICIT = {"bf16": "bf16-mixed", "16": "16-mixed", "32": "32-true"}


def cpu_supports_bf16() -> bool:
    """AVX-512 BF16 or AMX: bf16 autocast is several times faster than fp32; without them it is slower."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def uses_gpu(accelerator: str) -> bool:
    if accelerator in ("gpu", "cuda"):
        return True
    return accelerator == "auto" and torch.cuda.is_available()


def resolve_precision(setting: str, accelerator: str = "auto") -> str:
    """RunConfig's precision ("auto", "bf16", "16", "32") -> a Lightning precision string.

    auto: bf16-mixed on GPUs that support it, else 16-mixed on GPU; bf16-mixed on CPUs with AVX-512 BF16
    or AMX; else 32-true.
    """
    gpu = uses_gpu(accelerator)
    if setting == "auto":
        if gpu:
            return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        return "bf16-mixed" if cpu_supports_bf16() else "32-true"
    if setting not in _EXPLICIT:
        raise ConfigError(f"train.precision is {setting!r}", hint="choose one of: auto, bf16, 16, 32")
    if setting == "16" and not gpu:
        raise ConfigError("precision 16 (float16 AMP) needs a GPU", hint="use --precision bf16 or 32 on CPU")
    return _EXPLICIT[setting]


def parse_devices(devices: str) -> int | str | list[int]:
    """'auto' | '2' | '0,1' -> what Lightning's Trainer(devices=...) takes."""
    text = str(devices).strip()
    if text in ("auto", "-1"):
        return "auto" if text == "auto" else -1
    try:
        if "," in text:
            return [int(part) for part in text.split(",") if part.strip()]
        return int(text)
    except ValueError:
        raise ConfigError(
            f"train.devices is {devices!r}", hint="use auto, a count like 2, or ids like 0,1"
        ) from None
