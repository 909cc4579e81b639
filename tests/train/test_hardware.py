"""Precision, devices and XLA are decided from the hardware (measured defaults, not assumptions)."""

from __future__ import annotations

import pytest

from leukoscope import precision
from leukoscope.errors import ConfigError
from leukoscope.train import hardware


def test_training_precision_on_any_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """float32 on every CPU, BF16 units or not (bf16 measured 0.45-0.6x without them, 1.00x with)."""
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [])
    assert hardware.resolve_precision("auto") == "float32"
    for setting, policy in (("fp32", "float32"), ("32", "float32"), ("bf16", "mixed_bfloat16")):
        assert hardware.resolve_precision(setting) == policy
    for setting in ("fp16", "16"):
        with pytest.raises(ConfigError, match="needs a GPU"):
            hardware.resolve_precision(setting)
    with pytest.raises(ConfigError, match="choose one of: auto, fp32, bf16, fp16"):
        hardware.resolve_precision("fp8")


def test_gpu_precision_follows_compute_capability(monkeypatch: pytest.MonkeyPatch) -> None:
    for capability, policy in (((8, 0), "mixed_bfloat16"), ((7, 5), "mixed_float16"), ((6, 1), "float32")):
        monkeypatch.setattr(precision, "gpu_capabilities", lambda c=capability: [c])
        assert hardware.resolve_precision("auto") == policy
        assert hardware.resolve_precision("auto", on_gpu=False) == "float32"  # devices: cpu
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [(9, 0), (7, 0)])
    assert hardware.resolve_precision("auto") == "mixed_float16"  # the oldest GPU decides
    assert hardware.resolve_precision("16") == "mixed_float16"


def test_no_xla_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "gpus", lambda: [])
    assert hardware.resolve_jit(None) is False
    assert hardware.resolve_jit(True) is True
    monkeypatch.setattr(hardware, "gpus", lambda: ["gpu0"])
    assert hardware.resolve_jit(None) == "auto"


@pytest.mark.parametrize("setting", ["two", "0", "cpu:x", "-1"])
def test_bad_device_settings(setting: str) -> None:
    with pytest.raises(ConfigError, match=r"train\.devices"):
        hardware.resolve_devices(setting)


def test_gpus_requested_on_a_machine_without_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "gpus", lambda: [])
    with pytest.raises(ConfigError, match="no GPU is visible"):
        hardware.resolve_devices("2")
    with pytest.raises(ConfigError, match="no GPU is visible"):
        hardware.resolve_devices("gpu")  # what --accelerator gpu reads as
    assert hardware.resolve_devices("auto").description == "CPU"
