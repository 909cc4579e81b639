"""Precision, devices and XLA are decided from the hardware (measured defaults, not assumptions)."""

from __future__ import annotations

import pytest

from leukoscope.errors import ConfigError
from leukoscope.train import hardware


def test_explicit_precisions_and_auto_on_this_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "gpus", lambda: [])
    assert hardware.resolve_precision("32") == "float32"
    assert hardware.resolve_precision("bf16") == "mixed_bfloat16"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx512f", "avx2"}))
    assert hardware.resolve_precision("auto") == "float32"  # bf16 is emulated (0.45-0.6x) without BF16
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert hardware.resolve_precision("auto") == "mixed_bfloat16"
    with pytest.raises(ConfigError, match="needs a GPU"):
        hardware.resolve_precision("16")
    with pytest.raises(ConfigError, match="choose one of"):
        hardware.resolve_precision("fp8")


def test_gpu_precision_follows_compute_capability(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "gpus", lambda: ["gpu0"])
    for capability, policy in (((8, 0), "mixed_bfloat16"), ((7, 5), "mixed_float16"), ((6, 1), "float32")):
        monkeypatch.setattr(hardware, "gpu_compute_capability", lambda _d, c=capability: c)
        assert hardware.resolve_precision("auto") == policy
    assert hardware.resolve_precision("16") == "mixed_float16"


def test_no_xla_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "gpus", lambda: [])
    assert hardware.resolve_jit(None) is False
    assert hardware.resolve_jit(True) is True
    monkeypatch.setattr(hardware, "gpus", lambda: ["gpu0"])
    assert hardware.resolve_jit(None) == "auto"


def test_cpu_flags_are_read_from_proc() -> None:
    flags = hardware.cpu_flags()
    assert not flags or "fpu" in flags or "sse2" in flags


@pytest.mark.parametrize("setting", ["two", "0", "cpu:x", "-1"])
def test_bad_device_settings(setting: str) -> None:
    with pytest.raises(ConfigError, match=r"train\.devices"):
        hardware.resolve_devices(setting)


def test_gpus_requested_on_a_machine_without_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "gpus", lambda: [])
    with pytest.raises(ConfigError, match="no GPU is visible"):
        hardware.resolve_devices("2")
    assert hardware.resolve_devices("auto").description == "CPU"
