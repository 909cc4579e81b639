"""Where training runs: the precision policy, the devices (one, or several with MirroredStrategy), and XLA.

The precision vocabulary and what `auto` picks live in `leukoscope.precision` (shared with inference):
float32 on every CPU, mixed precision on GPUs (bfloat16 from compute capability 8, float16 on 7.x).
XLA was measured 6-40x slower on this CPU, so it is off there by default.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from leukoscope import precision
from leukoscope.errors import ConfigError

log = logging.getLogger(__name__)


def gpus() -> list[Any]:
    import tensorflow as tf

    return list(tf.config.list_physical_devices("GPU"))


def resolve_precision(setting: str, on_gpu: bool | None = None) -> str:
    """TrainConfig.precision (auto | fp32 | bf16 | fp16, or the old 32 / 16) -> a Keras dtype policy name.

    `on_gpu` False: the job runs on the CPU even where GPUs are visible (devices: cpu).
    """
    capabilities = [] if on_gpu is False else precision.gpu_capabilities()
    return precision.policy(precision.training_precision(setting, capabilities))


def resolve_jit(setting: bool | None) -> bool | str:
    """XLA: never by default on CPU (measured 6-40x slower here); Keras' own choice on GPUs."""
    if setting is not None:
        return bool(setting)
    return "auto" if gpus() else False


@dataclass(frozen=True)
class Placement:
    strategy: Any  # tf.distribute.Strategy
    devices: list[str]
    description: str


def resolve_devices(setting: str) -> Placement:
    """TrainConfig.devices -> a distribution strategy.

    auto: every visible GPU (MirroredStrategy when more than one), else the CPU; `gpu`: the same, but
    refused without a GPU (what `--accelerator gpu` meant); a count (2) or GPU ids (0,1); `cpu`: the CPU
    even where GPUs exist; `cpu:N`: N logical CPU devices mirrored (proves the multi-replica wiring on a
    machine without GPUs; no faster). Must run before TensorFlow uses a device.
    """
    import tensorflow as tf

    text = str(setting).strip().lower()
    if text.startswith("cpu"):
        count = _count(text.partition(":")[2] or "1", setting)
        return _cpu_placement(count)
    visible = gpus()
    if text in ("auto", "gpu"):
        chosen = list(range(len(visible)))
    elif "," in text:  # ids, e.g. "0,1" (or "1," for GPU 1 alone)
        chosen = [_count(part, setting, minimum=0) for part in text.split(",") if part.strip()]
    else:
        chosen = list(range(_count(text, setting)))
    if not visible:
        if text != "auto":
            raise ConfigError(f"train.devices is {setting!r} but no GPU is visible", hint="use auto or cpu")
        return Placement(tf.distribute.get_strategy(), ["/cpu:0"], "CPU")
    missing = [i for i in chosen if i >= len(visible)]
    if missing:
        raise ConfigError(
            f"GPU {missing[0]} is not visible ({len(visible)} visible)",
            hint="check CUDA_VISIBLE_DEVICES or the job's GPU request",
        )
    names = [f"/gpu:{i}" for i in chosen]
    if len(names) == 1:
        return Placement(tf.distribute.OneDeviceStrategy(names[0]), names, f"GPU {chosen[0]}")
    return Placement(tf.distribute.MirroredStrategy(names), names, f"{len(names)} GPUs (MirroredStrategy)")


def _cpu_placement(count: int) -> Placement:
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_visible_devices([], "GPU")
        if count > 1:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
            )
    except RuntimeError as exc:  # TensorFlow already initialised its devices in this process
        raise ConfigError(f"cannot split the CPU into {count} devices now ({exc})") from None
    if count == 1:
        return Placement(tf.distribute.OneDeviceStrategy("/cpu:0"), ["/cpu:0"], "CPU")
    names = [f"/cpu:{i}" for i in range(count)]
    return Placement(tf.distribute.MirroredStrategy(names), names, f"{count} CPU replicas (MirroredStrategy)")


def _count(text: str, setting: str, minimum: int = 1) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(
            f"train.devices is {setting!r}", hint="use auto, a count like 2, GPU ids like 0,1, cpu or cpu:2"
        ) from None
    if value < minimum:
        raise ConfigError(f"train.devices is {setting!r}", hint=f"counts start at {minimum}")
    return value


def threads_from_environment() -> None:
    """Honour a scheduler's core budget (Snakemake `threads`, SLURM cpus-per-task) for TF's pools."""
    import tensorflow as tf

    for name in ("LEUKOSCOPE_THREADS", "SLURM_CPUS_PER_TASK"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            tf.config.threading.set_intra_op_parallelism_threads(int(value))
            tf.config.threading.set_inter_op_parallelism_threads(min(2, int(value)))
            log.info("TensorFlow uses %s threads (%s)", value, name)
            return
