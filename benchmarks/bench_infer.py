"""Inference: `leukoscope predict` on 1,000 images, whole process, vs a plain batched `model.predict` script.

The model is the CPU recipe's model folder from the train benchmark (EfficientNetB0 @160, made by the
workflow's training job); without one, a short job makes it. The images: 1,000 of the synthetic 450x450
C-NMC BMPs in one folder. Each side is a fresh process timed from start to exit (Python, imports, model
load, reading and cropping every image, inference, writing the CSV), alternated over rounds:
- `leukoscope predict MODEL FOLDER --out preds.csv --backend keras | onnx | tflite` (the exports made
  once beforehand with `leukoscope export`, as a deployment does; their time is reported);
- `benchmarks/baseline_predict.py`: keras.saving.load_model, OpenCV reads + the same crop one by one,
  one `model.predict(batch_size=32)`.
The second round runs only the fastest backend of the first and the plain script, in the other order.
Label agreement: each backend's labels vs the plain script's, file by file, at the card's threshold and at
the plain script's median probability (a threshold with half the images on each side, so a model that
labels everything alike still shows whether the backends order the images the same way). Batch-1 latency: one
preprocessed image through `load_predictor(...).predict_arrays` per backend vs `model.predict` on one
image, median of repeated calls after warm-up, in this process.
"""

from __future__ import annotations

import csv
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import bench_train
from benchmarks import data as bdata
from benchmarks.common import REPO, CpuShare, Figure, Settings, log, merge_cpu
from benchmarks.procs import run_measured

BACKENDS = ("keras", "onnx", "tflite")
SPEED_TARGET = 2.0
AGREEMENT_TARGET = 99.5


def model_folder(settings: Settings) -> Path:
    """The CPU recipe's trained model folder (the train benchmark's), made by a short job when missing."""
    backbone, size = settings.pick(bench_train.CPU_RECIPE, ("simplecnn", 32))
    art = bdata.artifact(settings, size)
    spec = bench_train.job_spec(settings, art, backbone, "cpu", settings.pick(2, 1), extras=False)
    folder = Path(spec["out"])
    if not (folder / "model.keras").is_file() or not (folder / "model_card.json").is_file():
        log(f"infer: no trained {backbone}@{size} model folder: a short workflow job makes one")
        bench_train.clear(spec)
        bench_train.run_script(settings, "train_job.py", spec, f"job-cpu-{backbone}-{size}-for-infer")
    return folder


def image_folder(settings: Settings, n: int) -> Path:
    """`n` synthetic BMPs hard-linked into one folder (no copies), file names unique and ordered."""
    folder = settings.work / "infer-images" / str(n)
    if folder.is_dir() and len(list(folder.iterdir())) == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i, path in enumerate(bdata.image_files(settings, n)):
        target = folder / f"img-{i:05d}.bmp"
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    return folder


def leukoscope_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("leukoscope")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "leukoscope"]


def read_labels(path: Path, column: str) -> dict[str, str]:
    with open(path, newline="") as handle:
        return {Path(row["path"]).name: row[column] for row in csv.DictReader(handle)}


def read_column(path: Path, column: str) -> dict[str, float]:
    with open(path, newline="") as handle:
        return {Path(row["path"]).name: float(row[column]) for row in csv.DictReader(handle) if row[column]}


def run(settings: Settings, out_dir: Path) -> tuple[list[Figure], dict[str, Any]]:
    n = settings.pick(1000, 24)
    rounds = settings.pick(2, 1)
    model = model_folder(settings)
    images = image_folder(settings, n)
    runs = settings.work / "runs" / f"infer{'-tiny' if settings.tiny else ''}"
    runs.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    log(f"infer: leukoscope export {model.name} --format all (onnx, tflite, saved_model; once)")
    exported = run_measured([*leukoscope_cmd(), "export", str(model), "--format", "all"], env=env,
                            log_path=runs / "export.log", timeout=1800)  # fmt: skip
    if exported["rc"] != 0:
        tail = (runs / "export.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"leukoscope export --format all failed (rc {exported['rc']}):\n{tail}")

    commands = {
        b: [
            *leukoscope_cmd(),
            "predict",
            str(model),
            str(images),
            "--out",
            str(runs / f"{b}.csv"),
            "--backend",
            b,
        ]
        for b in BACKENDS
    }
    commands["baseline"] = [
        sys.executable, str(REPO / "benchmarks" / "baseline_predict.py"), str(model), str(images),
        str(runs / "baseline.csv"),
    ]  # fmt: skip
    seconds: dict[str, list[float]] = {k: [] for k in commands}
    shares: dict[str, list[dict[str, Any]]] = {k: [] for k in commands}
    rss: dict[str, float] = {}
    for r in range(rounds):
        order = list(commands)
        if r % 2:  # later rounds: the fastest backend so far and the baseline, in the other order
            fastest_yet = min(BACKENDS, key=lambda b: statistics.median(seconds[b]))
            order = ["baseline", fastest_yet]
        for name in order:
            with CpuShare() as share:
                res = run_measured(commands[name], env=env, log_path=runs / f"{name}.log", timeout=1800)
            if res["rc"] != 0:
                tail = (runs / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} predict failed (rc {res['rc']}):\n{tail}")
            seconds[name].append(res["seconds"])
            shares[name].append(share.result)
            rss[name] = max(rss.get(name, 0.0), res["max_rss_gib"] or 0.0)
        log(f"infer round {r + 1}: " + ", ".join(f"{k} {seconds[k][-1]:.1f} s" for k in order))
    med = {k: statistics.median(v) for k, v in seconds.items()}
    base_labels = read_labels(runs / "baseline.csv", "label")
    base_p = read_column(runs / "baseline.csv", "p_positive")
    card = _card(model)
    agreement, max_dp, split_agreement = {}, {}, {}
    split = float(np.median(list(base_p.values())))  # a threshold that splits the plain script's labels 50/50
    for b in BACKENDS:
        labels = read_labels(runs / f"{b}.csv", "predicted")
        same = sum(labels.get(k) == v for k, v in base_labels.items())
        agreement[b] = 100.0 * same / len(base_labels)
        p = read_column(runs / f"{b}.csv", f"p_{card.positive_class}")
        max_dp[b] = max(abs(p[k] - base_p[k]) for k in base_p)
        split_agreement[b] = 100.0 * float(
            np.mean([(p[k] >= split) == (v >= split) for k, v in base_p.items()])
        )
    fastest = min(BACKENDS, key=lambda b: med[b])
    positives = float(np.mean([v == card.positive_class for v in base_labels.values()]))
    margin = float(np.median([abs(v - card.threshold) for v in base_p.values()]))
    figures: list[Figure] = []
    ratio = med["baseline"] / med[fastest]
    export_s = exported["seconds"]
    figures.append(
        Figure(
            "infer",
            f"leukoscope predict, {n:,} images whole process, fastest backend ({fastest})",
            n / med[fastest],
            "images/s",
            baseline=n / med["baseline"],
            ratio=ratio,
            target=f">= {SPEED_TARGET:.0f}x",
            met=ratio >= SPEED_TARGET,
            note=_speed_note(card, n, med, fastest, rss, export_s, rounds, ratio),
            cpu=merge_cpu(*shares[fastest], *shares["baseline"]),
        )
    )
    for b in BACKENDS:
        if b != fastest:
            figures.append(
                Figure(
                    "infer",
                    f"leukoscope predict, {n:,} images whole process, {b}",
                    n / med[b],
                    "images/s",
                    baseline=n / med["baseline"],
                    ratio=med["baseline"] / med[b],
                    note=f"{med[b]:.1f} s vs {med['baseline']:.1f} s (median of {rounds}); peak RSS "
                    f"{rss[b]:.2f} GiB",
                    cpu=merge_cpu(*shares[b], *shares["baseline"]),
                )
            )
    for b in BACKENDS:
        figures.append(
            Figure(
                "infer",
                f"label agreement, {b} vs the plain model.predict script",
                agreement[b],
                "%",
                target=f">= {AGREEMENT_TARGET}%",
                met=agreement[b] >= AGREEMENT_TARGET,
                note=f"{len(base_labels):,} images, {round(len(base_labels) * (1 - agreement[b] / 100))} "
                f"differ; max |dP| {max_dp[b]:.2e}; the plain script labels {100 * positives:.0f}% "
                f"{card.positive_class}, median |P - threshold| {margin:.3f}; with the threshold at the "
                f"plain script's median P ({split:.4f}, half the images on each side) "
                f"{split_agreement[b]:.1f}% agree",
            )
        )
    figures += latency_figures(settings, model, card)
    extra = {
        "model": str(model),
        "images": n,
        "process_seconds": seconds,
        "peak_rss_gib": rss,
        "export_all_s": exported["seconds"],
        "agreement": agreement,
        "agreement_at_median_threshold": split_agreement,
        "fastest": fastest,
    }
    return figures, extra


def _card(model: Path) -> Any:
    import json

    from leukoscope.models.card import ModelCard

    return ModelCard.from_dict(json.loads((model / "model_card.json").read_text()))


def _speed_note(
    card: Any, n: int, med: dict[str, float], fastest: str, rss: dict[str, float], export_s: float | None,
    rounds: int, ratio: float,
) -> str:  # fmt: skip
    size = card.preprocess.image_size
    note = (
        f"{card.backbone} @{size} (the CPU recipe's model from the workflow job); {med[fastest]:.1f} s vs "
        f"{med['baseline']:.1f} s per process (median of {rounds}, alternated): start-up, imports, model "
        f"load, read + crop of every 450 px BMP, inference, CSV; peak RSS {rss[fastest]:.2f} vs "
        f"{rss['baseline']:.2f} GiB; the exports were made once beforehand (`leukoscope export --format "
        f"all`: {export_s:.0f} s)"
    )
    if ratio < SPEED_TARGET:
        others = ", ".join(f"{b} {med[b]:.1f} s" for b in BACKENDS if b != fastest)
        note += f". Below {SPEED_TARGET:.0f}x; other backends: {others}"
    return note


def latency_figures(settings: Settings, model: Path, card: Any) -> list[Figure]:
    """Batch-1 latency of every backend vs plain `model.predict` on one image, in this process."""
    import keras

    import leukoscope.models.layers  # noqa: F401
    from leukoscope.infer.predictor import load_predictor

    reps, warm = settings.pick(30, 3), settings.pick(5, 1)
    size = card.preprocess.image_size
    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)

    def median_ms(fn: Any) -> tuple[float, dict[str, Any]]:
        for _ in range(warm):
            fn()
        with CpuShare() as share:
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
        return 1000 * statistics.median(times), share.result

    plain = keras.saving.load_model(str(model / "model.keras"), compile=False)
    x = image.astype("float32")
    base_ms, base_cpu = median_ms(lambda: plain.predict(x, verbose=0))
    figures = []
    for b in BACKENDS:
        predictor = load_predictor(model, backend=b)
        ms, share = median_ms(lambda p=predictor: p.predict_arrays(image))
        figures.append(
            Figure(
                "infer",
                f"batch-1 latency, {b} ({card.backbone} @{size})",
                ms,
                "ms",
                baseline=base_ms,
                ratio=base_ms / ms,
                note=f"ratio = baseline ms / {b} ms (higher is faster); baseline: model.predict on one "
                f"image; median of {reps} calls after {warm} warm-up, one preprocessed image",
                cpu=merge_cpu(share, base_cpu),
            )
        )
    return figures
