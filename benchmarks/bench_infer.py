"""Inference: leukoscope's predictors (torch bf16 + channels_last, onnxruntime) vs eager fp32 timm.

Every side starts from the same preprocessed uint8 NHWC images (the cache's format) and ends with class
probabilities, so normalisation is inside every timing. The baseline is what a user writes from the PyTorch
tutorials: the same weights, `model.eval()`, `torch.no_grad()`, fp32, NCHW. Label agreement is measured
against that fp32 baseline on every benchmark image, beside the speed-up.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import data as bdata
from benchmarks import profiling
from benchmarks.common import CpuShare, Figure, Settings, log, merge_cpu

MODELS = {"tf_efficientnet_lite0": 224, "efficientnet_b2": 260}
COMPILED_NOTE = (
    "predict / evaluate / serve --compile: torch.compile (inductor, frozen weights: batch norm folded, "
    "activations fused) under the same bf16 autocast + channels_last; compiled once per batch shape in the "
    "warm-up (about 10 s each), partial batches padded to the batch size"
)


def throughput(fn: Callable[[np.ndarray], Any], images: np.ndarray, batch: int, min_seconds: float) -> float:
    """Images/s of `fn` over consecutive batches, after two warm-up batches (oneDNN builds kernels)."""
    batches = [images[i : i + batch] for i in range(0, len(images) - batch + 1, batch)]
    for b in batches[:2]:
        fn(b)
    done, t0 = 0, time.perf_counter()
    while True:
        for b in batches:
            fn(b)
            done += len(b)
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds:
            return done / elapsed


def latency_ms(fn: Callable[[np.ndarray], Any], images: np.ndarray, count: int) -> float:
    """Median milliseconds of one single-image call."""
    for i in range(3):
        fn(images[i : i + 1])
    times = []
    for i in range(count):
        j = i % len(images)
        t0 = time.perf_counter()
        fn(images[j : j + 1])
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


class EagerFp32:
    """The tutorial way: fp32 NCHW, no_grad, normalise in float."""

    def __init__(self, model: torch.nn.Module, mean: Any, std: Any) -> None:
        self.model = model.float().eval().to(memory_format=torch.contiguous_format)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def logits(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(255.0)
        x = ((x - self.mean) / self.std).contiguous()
        with torch.no_grad():
            return self.model(x)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return torch.sigmoid(self.logits(images)).numpy()


def baseline_predict_files(model: torch.nn.Module, paths: list[str], size: int, mean: Any, std: Any) -> float:
    """Images/s of the tutorial way over files: PIL decode + crop + pad/resize + ToTensor + Normalize in
    a DataLoader (2 workers, batch 32), fp32 NCHW model under no_grad."""
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    from benchmarks.baseline import CropToCell, PadResize

    tf = transforms.Compose(
        [CropToCell(), PadResize(size), transforms.ToTensor(), transforms.Normalize(mean, std)]
    )

    class Files(Dataset):
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int) -> torch.Tensor:
            return tf(Image.open(paths[i]).convert("RGB"))

    model = model.float().eval().to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        model(torch.zeros(32, 3, size, size))  # warm, like the predictor it is compared with
    t0 = time.perf_counter()
    with torch.no_grad():
        for x in DataLoader(Files(), batch_size=32, num_workers=2):
            torch.sigmoid(model(x))
    return len(paths) / (time.perf_counter() - t0)


def model_dir_for(settings: Settings, backbone: str, size: int) -> Path:
    """The run directory the train benchmark left, or a freshly saved model with the same card fields."""
    from leukoscope.models.card import CARD_NAME, WEIGHTS_NAME

    run = settings.work / "runs" / f"train-{backbone}-{size}{'-tiny' if settings.tiny else ''}"
    if (run / CARD_NAME).is_file() and (run / WEIGHTS_NAME).is_file():
        return run
    return bdata.saved_model(settings, backbone, size)


def run(settings: Settings, out_dir: Path) -> tuple[list[Figure], dict[str, Any]]:
    from leukoscope.infer.engine import logits_to_probs, predicted_labels
    from leukoscope.infer.export import export_model_dir
    from leukoscope.infer.predictor import load_predictor
    from leukoscope.models.card import load_model

    n_images = settings.pick(512, 64)
    min_seconds = settings.pick(8.0, 0.2)
    n_latency = settings.pick(40, 4)
    batch = 32 if not settings.tiny else 16
    figures: list[Figure] = []
    extra: dict[str, Any] = {"models": {}}
    for backbone, size in settings.models(MODELS).items():
        model_dir = model_dir_for(settings, backbone, size)
        images = bdata.preprocessed_images(settings, n_images, size)
        torch_pred = load_predictor(model_dir, backend="torch", precision="auto")
        onnx_path = export_model_dir(model_dir, settings.work / "onnx" / f"{model_dir.name}.onnx").path
        onnx_pred = load_predictor(onnx_path, backend="onnx")
        model, card = load_model(model_dir)
        base = EagerFp32(model, card.preprocess.mean, card.preprocess.std)
        log(f"infer {backbone}@{size}: model {model_dir}, torch precision {torch_pred.precision}")

        def base_probs(x: np.ndarray, base: EagerFp32 = base) -> np.ndarray:
            return base(x)

        sides: dict[str, Callable[[np.ndarray], Any]] = {
            "eager fp32": base_probs,
            f"torch {torch_pred.precision}": torch_pred.predict_arrays,
            "onnx": onnx_pred.predict_arrays,
        }
        compiled = load_predictor(model_dir, backend="torch", precision="auto", compile=True)
        sides[f"torch {compiled.precision} compiled"] = compiled.predict_arrays
        rates: dict[str, float] = {}
        lat: dict[str, float] = {}
        cpu: dict[str, dict] = {}
        for name, fn in sides.items():
            with CpuShare() as share:
                rates[name] = throughput(fn, images, batch, min_seconds)
                lat[name] = latency_ms(fn, images, n_latency)
            cpu[name] = share.result
            log(f"  {name}: {rates[name]:.1f} img/s at batch {batch}, {lat[name]:.1f} ms at batch 1")

        # label agreement with the fp32 baseline on every image
        base_logits = torch.cat([base.logits(images[i : i + batch]) for i in range(0, len(images), batch)])
        base_p = logits_to_probs(base_logits, card).numpy()
        base_labels = predicted_labels(base_p, card)
        pos = card.positive_index
        margin = float(np.median(np.abs(base_p[:, pos] - card.threshold)))
        for name in sides:
            if name == "eager fp32":
                continue
            fn = sides[name]
            p = np.concatenate([fn(images[i : i + batch]) for i in range(0, len(images), batch)])
            labels = predicted_labels(p, card)
            same = np.array([a == b for a, b in zip(labels, base_labels, strict=True)])
            agree = float(same.mean())
            max_dp = float(np.max(np.abs(p[:, pos] - base_p[:, pos])))
            flip_margin = float(np.max(np.abs(base_p[~same, pos] - card.threshold))) if (~same).any() else 0.0
            both = merge_cpu(cpu[name], cpu["eager fp32"])
            r = rates[name] / rates["eager fp32"]
            note = ""
            if name.startswith("torch") and r < 4:
                x = images[:batch]
                prof_ls = profiling.profile_calls(lambda fn=fn, x=x: fn(x), 2)
                prof_base = profiling.profile_calls(lambda x=x, base=base: base(x), 2)
                note = (
                    f"below 4x; self-CPU profile of {name}: {profiling.summary(prof_ls, 4, ops=3)}; "
                    f"eager fp32: {profiling.summary(prof_base, 4, ops=3)}. bf16 shrinks the convolutions; "
                    "what remains is unfused activation / batch-norm / copy work"
                )
                extra.setdefault("profiles", {})[f"{backbone} {name}"] = {
                    "leukoscope": prof_ls,
                    "fp32": prof_base,
                }
            figures.append(
                Figure(
                    "infer",
                    f"{backbone} @{size} {name} batch {batch}",
                    rates[name],
                    "images/s",
                    baseline=rates["eager fp32"],
                    ratio=r,
                    target=">= 4x" if name.startswith("torch") else "",
                    met=(r >= 4) if name.startswith("torch") else None,
                    note="; ".join(n for n in (COMPILED_NOTE if "compiled" in name else "", note) if n),
                    cpu=both,
                )
            )
            figures.append(
                Figure(
                    "infer",
                    f"{backbone} @{size} {name} batch 1 latency",
                    lat[name],
                    "ms",
                    baseline=lat["eager fp32"],
                    ratio=lat["eager fp32"] / lat[name],
                    note="ratio = baseline ms / leukoscope ms (higher is faster)",
                    cpu=merge_cpu(cpu[name], cpu["eager fp32"]),
                )
            )
            figures.append(
                Figure(
                    "infer",
                    f"{backbone} @{size} {name} label agreement with fp32",
                    100 * agree,
                    "%",
                    target=">= 99.5%",
                    met=agree >= 0.995,
                    note=f"{len(images)} images, {int((~same).sum())} flipped"
                    + (f" (all within {flip_margin:.4f} of the threshold in fp32)" if (~same).any() else "")
                    + f"; max |dP| {max_dp:.4f}; median fp32 |P - threshold| {margin:.3f}",
                )
            )
        if backbone == next(iter(MODELS)):
            figures.append(end_to_end(settings, model_dir, torch_pred, size))
        extra["models"][backbone] = {
            "model_dir": str(model_dir),
            "image_size": size,
            "images": len(images),
            "torch_precision": torch_pred.precision,
            "rates": rates,
            "latency_ms": lat,
        }
    return figures, extra


def end_to_end(settings: Settings, model_dir: Path, predictor: Any, size: int) -> Figure:
    """`leukoscope predict`'s path over BMP files (`predict_paths`: decode workers + bf16 model) vs the
    tutorial loop over the same files, both including decode and preprocessing."""
    from leukoscope.infer.predict import predict_paths
    from leukoscope.models.card import load_model

    paths = bdata.image_paths(bdata.train_set(settings))[: settings.pick(320, 32)]
    model, card = load_model(model_dir)
    with CpuShare() as base_share:
        base_rate = baseline_predict_files(model, paths, size, card.preprocess.mean, card.preprocess.std)
    with CpuShare() as ls_share:
        t0 = time.perf_counter()
        results = predict_paths(predictor, paths, batch_size=32)
        ls_rate = len(paths) / (time.perf_counter() - t0)
    assert all(not r.error for r in results)
    log(f"  end to end over {len(paths)} files: leukoscope {ls_rate:.1f}/s, baseline {base_rate:.1f}/s")
    return Figure(
        "infer",
        f"end to end: {len(paths)} BMP files -> predictions ({card.backbone} @{size})",
        ls_rate,
        "images/s",
        baseline=base_rate,
        ratio=ls_rate / base_rate,
        note="leukoscope predict's predict_paths (decode workers = cores - 1, batch 32, torch "
        f"{predictor.precision}); baseline: PIL decode + crop + pad/resize + ToTensor + Normalize, "
        "DataLoader with 2 workers, fp32 NCHW; both models warm, DataLoader start-up included on both sides",
        cpu=merge_cpu(base_share.result, ls_share.result),
    )
