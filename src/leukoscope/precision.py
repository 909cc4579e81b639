"""One precision vocabulary for training and inference: `auto | fp32 | bf16 | fp16` ("32" / "16": old names).

What `auto` picks, and why (measured, see README "Speed"):
- inference: fp32 everywhere, so a model gives the same probabilities on every machine. On a Zen 4 CPU
  with AVX512_BF16, Keras' mixed_bfloat16 changed them by up to 4e-3 and ran at 0.90x of fp32.
- training: fp32 on every CPU (mixed_bfloat16 ran at 0.45-0.6x of fp32 without BF16 units, 1.00x with
  AVX512_BF16 on Zen 4); on GPUs mixed_bfloat16 from compute capability 8 (tensor cores that do bf16),
  mixed_float16 on 7.x, fp32 below.
An explicit `bf16` or `fp16` is honoured where it can run (fp16 needs a GPU).

This module is framework-light (TensorFlow is imported only to list GPUs) and sits at the top of the
package so `train` and `infer` share it without one depending on the other. `auto` never looks at the
CPU's features (fp32 on all of them); GPUs are read by `gpu_capabilities()`, a module-level function, so
tests fake a machine with monkeypatch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from leukoscope.errors import ConfigError

log = logging.getLogger(__name__)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
ALIASES = {"32": "fp32", "16": "fp16"}
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
HINT = "choose one of: auto, fp32, bf16, fp16"

Capability = tuple[int, int]


def canonical(setting: object, what: str = "precision") -> str:
    """`setting` in the one vocabulary; the PyTorch-era "32" / "16" are read as fp32 / fp16 with a notice,
    anything else is one line."""
    text = str(setting).strip().lower()
    if text in ALIASES:
        log.warning("%s %s is an old name (PyTorch Lightning's): read as %s", what, text, ALIASES[text])
        text = ALIASES[text]
    if text not in PRECISIONS:
        raise ConfigError(f"unknown {what} {setting!r}", hint=HINT)
    return text


def policy(precision: str) -> str:
    """A resolved precision (fp32 | bf16 | fp16) -> the Keras dtype policy name."""
    return POLICIES[canonical(precision)]


def gpu_capabilities() -> list[Capability]:
    """(major, minor) compute capability of every visible GPU; [] on a CPU-only machine."""
    import tensorflow as tf

    found = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        found.append(tuple(details.get("compute_capability") or (0, 0)))
    return found  # type: ignore[return-value]


def _gpu_precision(capabilities: Sequence[Capability]) -> str:
    major = min(c[0] for c in capabilities)
    return "bf16" if major >= 8 else "fp16" if major >= 7 else "fp32"


def _check_fp16(resolved: str, capabilities: Sequence[Capability], what: str) -> None:
    if resolved == "fp16" and not capabilities:
        raise ConfigError(f"{what} fp16 (mixed_float16) needs a GPU", hint="use fp32 (or bf16) on a CPU")


def training_precision(setting: object, gpus: Sequence[Capability] | None = None) -> str:
    """train.precision -> fp32 | bf16 | fp16 for the devices the job runs on.

    `gpus`: the compute capabilities of the job's GPUs ([] for a CPU job; None: every visible GPU).
    """
    resolved = canonical(setting, "train.precision")
    capabilities = gpu_capabilities() if gpus is None else list(gpus)
    if resolved == "auto":
        return _gpu_precision(capabilities) if capabilities else "fp32"
    _check_fp16(resolved, capabilities, "train.precision")
    return resolved


def inference_precision(setting: object, gpus: Sequence[Capability] | None = None) -> str:
    """--precision for predict / evaluate / serve -> fp32 | bf16 | fp16: auto is fp32 on every machine."""
    resolved = canonical(setting)
    if resolved == "auto":
        return "fp32"
    if resolved == "fp16":
        _check_fp16(resolved, gpu_capabilities() if gpus is None else list(gpus), "precision")
    return resolved
