"""Inference: `leukoscope predict` on 1,000 images, whole process, vs a plain batched `model.predict` script.

The model is the CPU recipe's model folder from the train benchmark (EfficientNetB0 @160, made by the
workflow's training job); without one, a short job makes it. It is copied as training leaves it (no
export) into the benchmark's own folder. The images: 1,000 of the synthetic 450x450 C-NMC BMPs in one
folder. Each side is a fresh process timed from start to exit (Python, imports, model load, reading and
cropping every image, inference, writing the CSV):
- first call: `leukoscope predict MODEL FOLDER --out preds.csv` on the fresh copy: with the default
  options it converts model.keras to model.tflite once, keeps it beside it (exports.json records it) and
  predicts on it; the conversion's own time is read from its log;
- the measured call (default): the same command again, which now loads model.tflite, alternated with
  the baseline over rounds;
- `--backend keras`, and `--backend onnx` after one `leukoscope export --format onnx` (timed);
- `benchmarks/baseline_predict.py`: keras.saving.load_model, OpenCV reads + the same crop one by one,
  one `model.predict(batch_size=32)`.
Label agreement: each call's labels vs the plain script's, file by file, at the card's threshold and at
the plain script's median probability (a threshold with half the images on each side, so a model that
labels everything alike still shows whether the backends order the images the same way). Batch-1 latency:
one preprocessed image through `load_predictor(...).predict_arrays` per backend vs `model.predict` on one
image, median of repeated calls after warm-up, in this process.
"""

from __future__ import annotations

import csv
import os
import re
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


CALLS = ("default", "keras", "onnx")  # the measured predict calls; default = the cached LiteRT export
EXPORT_FILES = ("model.tflite", "model.onnx", "saved_model", "exports.json")


def fresh_copy(trained: Path, folder: Path) -> Path:
    """The run folder as training leaves it: the trained files, no export."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(trained, folder, ignore=shutil.ignore_patterns(*EXPORT_FILES))
    return folder


def _measured(cmd: list[str], env: dict[str, str], log_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    with CpuShare() as share:
        res = run_measured(cmd, env=env, log_path=log_path, timeout=1800)
    if res["rc"] != 0:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(cmd[:3])} failed (rc {res['rc']}):\n{tail}")
    return res, share.result


def run(settings: Settings, out_dir: Path) -> tuple[list[Figure], dict[str, Any]]:
    n = settings.pick(1000, 24)
    rounds = settings.pick(2, 1)
    images = image_folder(settings, n)
    runs = settings.work / "runs" / f"infer{'-tiny' if settings.tiny else ''}"
    runs.mkdir(parents=True, exist_ok=True)
    model = fresh_copy(model_folder(settings), runs / "model")
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    predict = [*leukoscope_cmd(), "predict", str(model), str(images), "--out"]

    log(f"infer: first call on a fresh copy of the run folder ({model}): builds model.tflite once")
    first, first_cpu = _measured([*predict, str(runs / "first.csv")], env, runs / "first.log")
    first_log = (runs / "first.log").read_text(errors="replace")
    built = re.search(r"built \S*model\.tflite in ([\d.]+) s", first_log)
    if built is None or not (model / "model.tflite").is_file() or "on tflite" not in first_log:
        raise RuntimeError(f"the first predict call did not build and use model.tflite:\n{first_log[-2000:]}")
    conversion_s = float(built.group(1))
    log("infer: leukoscope export --format onnx (once, for the onnx backend)")
    exported, _ = _measured([*leukoscope_cmd(), "export", str(model), "--format", "onnx"], env,
                            runs / "export.log")  # fmt: skip

    commands = {
        "default": [*predict, str(runs / "default.csv")],
        "keras": [*predict, str(runs / "keras.csv"), "--backend", "keras"],
        "onnx": [*predict, str(runs / "onnx.csv"), "--backend", "onnx"],
        "baseline": [
            sys.executable,
            str(REPO / "benchmarks" / "baseline_predict.py"),
            str(model),
            str(images),
            str(runs / "baseline.csv"),
        ],
    }
    seconds: dict[str, list[float]] = {k: [] for k in commands}
    shares: dict[str, list[dict[str, Any]]] = {k: [] for k in commands}
    rss: dict[str, float] = {"first": first["max_rss_gib"] or 0.0}
    for r in range(rounds):
        order = list(commands) if r % 2 == 0 else ["baseline", "default"]  # later rounds: the measured pair
        for name in order:
            res, share = _measured(commands[name], env, runs / f"{name}.log")
            seconds[name].append(res["seconds"])
            shares[name].append(share)
            rss[name] = max(rss.get(name, 0.0), res["max_rss_gib"] or 0.0)
        log(f"infer round {r + 1}: " + ", ".join(f"{k} {seconds[k][-1]:.1f} s" for k in order))
    if "on tflite" not in (runs / "default.log").read_text(errors="replace"):
        raise RuntimeError("the default predict call did not run on the cached model.tflite")
    med = {k: statistics.median(v) for k, v in seconds.items()}
    card = _card(model)
    agreement, notes = _agreement(runs, card, ["first", *CALLS])
    figures = _speed_figures(card, n, med, rss, first["seconds"], conversion_s, exported["seconds"], rounds,
                             shares, first_cpu)  # fmt: skip
    for call in CALLS:
        label = "default (tflite)" if call == "default" else call
        figures.append(
            Figure(
                "infer",
                f"label agreement, {label} vs the plain model.predict script",
                agreement[call],
                "%",
                target=f">= {AGREEMENT_TARGET}%",
                met=agreement[call] >= AGREEMENT_TARGET,
                note=notes[call]
                + (f"; the first call (which built the export) agrees {agreement['first']:.1f}%"
                   if call == "default" else ""),
            )
        )  # fmt: skip
    figures += latency_figures(settings, model, card)
    extra = {
        "model": str(model),
        "images": n,
        "first_call_s": first["seconds"],
        "conversion_s": conversion_s,
        "export_onnx_s": exported["seconds"],
        "process_seconds": seconds,
        "peak_rss_gib": rss,
        "agreement": agreement,
    }
    return figures, extra


def _agreement(runs: Path, card: Any, calls: list[str]) -> tuple[dict[str, float], dict[str, str]]:
    base_labels = read_labels(runs / "baseline.csv", "label")
    base_p = read_column(runs / "baseline.csv", "p_positive")
    split = float(np.median(list(base_p.values())))  # a threshold that splits the plain script's labels 50/50
    positives = float(np.mean([v == card.positive_class for v in base_labels.values()]))
    margin = float(np.median([abs(v - card.threshold) for v in base_p.values()]))
    agreement, notes = {}, {}
    for call in calls:
        labels = read_labels(runs / f"{call}.csv", "predicted")
        agreement[call] = 100.0 * sum(labels.get(k) == v for k, v in base_labels.items()) / len(base_labels)
        p = read_column(runs / f"{call}.csv", f"p_{card.positive_class}")
        at_split = 100.0 * float(np.mean([(p[k] >= split) == (v >= split) for k, v in base_p.items()]))
        notes[call] = (
            f"{len(base_labels):,} images, {round(len(base_labels) * (1 - agreement[call] / 100))} differ; "
            f"max |dP| {max(abs(p[k] - base_p[k]) for k in base_p):.2e}; the plain script labels "
            f"{100 * positives:.0f}% {card.positive_class}, median |P - threshold| {margin:.3f}; with the "
            f"threshold at the plain script's median P ({split:.4f}, half the images on each side) "
            f"{at_split:.1f}% agree"
        )
    return agreement, notes


def _card(model: Path) -> Any:
    import json

    from leukoscope.models.card import ModelCard

    return ModelCard.from_dict(json.loads((model / "model_card.json").read_text()))


def _speed_figures(
    card: Any, n: int, med: dict[str, float], rss: dict[str, float], first_s: float, conversion_s: float,
    onnx_export_s: float, rounds: int, shares: dict[str, list[dict[str, Any]]], first_cpu: dict[str, Any],
) -> list[Figure]:  # fmt: skip
    size = card.preprocess.image_size
    base = med["baseline"]
    ratio = base / med["default"]
    note = (
        f"{card.backbone} @{size}, the run folder as the workflow's training job left it; `leukoscope "
        f"predict RUN FOLDER --out preds.csv`, default options, on its 2nd and later calls (the 1st built "
        f"model.tflite beside model.keras: next row); {med['default']:.1f} s vs {base:.1f} s per process "
        f"(median of {rounds}, alternated): start-up, imports, model load, read + crop of every 450 px BMP, "
        f"inference, CSV; peak RSS {rss['default']:.2f} vs {rss['baseline']:.2f} GiB"
    )
    if ratio < SPEED_TARGET:
        note += f". Below {SPEED_TARGET:.0f}x; keras {med['keras']:.1f} s, onnx {med['onnx']:.1f} s"
    baseline_cpu = shares["baseline"]
    return [
        Figure(
            "infer",
            f"leukoscope predict RUN, {n:,} images whole process (default: LiteRT, cached on first use)",
            n / med["default"],
            "images/s",
            baseline=n / base,
            ratio=ratio,
            target=f">= {SPEED_TARGET:.0f}x",
            met=ratio >= SPEED_TARGET,
            note=note,
            cpu=merge_cpu(*shares["default"], *baseline_cpu),
        ),
        Figure(
            "infer",
            f"leukoscope predict RUN, {n:,} images whole process, first call on a fresh run folder",
            n / first_s,
            "images/s",
            baseline=n / base,
            ratio=base / first_s,
            note=f"{first_s:.1f} s vs {base:.1f} s, once per trained model: {conversion_s:.1f} s of it "
            f"converted model.keras to model.tflite (SavedModel -> TFLiteConverter, logged by predict), kept "
            f"for later calls; peak RSS {rss['first']:.2f} GiB",
            cpu=merge_cpu(first_cpu, *baseline_cpu),
        ),
        *(
            Figure(
                "infer",
                f"leukoscope predict RUN --backend {call}, {n:,} images whole process",
                n / med[call],
                "images/s",
                baseline=n / base,
                ratio=base / med[call],
                note=f"{med[call]:.1f} s vs {base:.1f} s (median of {rounds}); peak RSS {rss[call]:.2f} GiB"
                + (f"; after `leukoscope export --format onnx` ({onnx_export_s:.0f} s, once)"
                   if call == "onnx" else ""),
                cpu=merge_cpu(*shares[call], *baseline_cpu),
            )
            for call in ("keras", "onnx")
        ),
    ]  # fmt: skip


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
