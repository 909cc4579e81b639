"""One precision vocabulary for training and inference; `auto` decided from faked hardware."""

from __future__ import annotations

import pytest

from leukoscope import precision
from leukoscope.config import RunConfig
from leukoscope.errors import ConfigError


def test_one_vocabulary_with_the_old_names_as_aliases(caplog: pytest.LogCaptureFixture) -> None:
    assert [precision.canonical(s) for s in ("auto", "fp32", "bf16", "fp16", "32", "16", " FP32 ")] == [
        "auto", "fp32", "bf16", "fp16", "fp32", "fp16", "fp32",
    ]  # fmt: skip
    assert [precision.policy(s) for s in ("fp32", "bf16", "fp16")] == [
        "float32", "mixed_bfloat16", "mixed_float16",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match=r"unknown precision 'fp8': choose one of: auto, fp32, bf16, fp16"):
        precision.canonical("fp8")
    caplog.clear()
    cfg = RunConfig().override({"train.precision": "32"})
    assert cfg.train.precision == "fp32"  # saved with the run in the new vocabulary
    assert [r.getMessage() for r in caplog.records] == [
        "train.precision 32 is an old name (PyTorch Lightning's): read as fp32"
    ]
    assert RunConfig.from_dict(cfg.to_dict()).train.precision == "fp32"


def test_auto_is_fp32_on_every_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever its features (BF16 units included: measured no faster), a CPU gets fp32."""
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [])
    assert precision.training_precision("auto") == "fp32"
    assert precision.inference_precision("auto") == "fp32"
    assert precision.inference_precision("bf16") == "bf16"  # asked for: honoured (Keras emulates it)
    with pytest.raises(ConfigError, match=r"fp16 .* needs a GPU"):
        precision.inference_precision("fp16")
    with pytest.raises(ConfigError, match="needs a GPU"):
        precision.training_precision("16")


def test_auto_on_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = {(9, 0): "bf16", (8, 6): "bf16", (7, 5): "fp16", (7, 0): "fp16", (6, 1): "fp32"}
    for capability, wanted in cases.items():
        monkeypatch.setattr(precision, "gpu_capabilities", lambda c=capability: [c])
        assert precision.training_precision("auto") == wanted
        assert precision.inference_precision("auto") == "fp32"  # the same probabilities everywhere
        assert precision.inference_precision("fp16") == "fp16"
    assert precision.training_precision("auto", gpus=[]) == "fp32"  # a CPU job on a GPU machine
