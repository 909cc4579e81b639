"""Training, in two parts: `train` (in `make bench`) and `train-paper` (`make bench-train`, ~30 min here).

`train`: the CPU recipe's workflow job (configs/cpu-fast.yaml's EfficientNetB0 @160 on the train rule's
code, over the 20,050-sample augmented artifact, 2 epochs of a few steps, validation on 64 images, a
checkpoint every epoch): its steady epoch, images/s, data wait, Keras loop overhead and peak RSS. The
model it leaves is the one the infer benchmark predicts with.

`train-paper`: the workflow's job vs a plain `model.fit` over `ImageDataGenerator` on the paper's
DenseNet201 @224 and EfficientNetB2 @260 (batch 32, random start weights: speed does not depend on
them), each side in its own process, the order alternating between networks:
- the job: `benchmarks/train_job.py` = the train rule's code, as above;
- the baseline: `benchmarks/baseline_train.py` = the same network, optimiser and augmentations over the
  same images as BMP files (`flow_from_directory`), validated on the same 64 images.
Graph tracing takes 2.5-5 min per process for these networks here (epoch 1), which is why this part left
`make bench`'s 30 minutes.

Epoch time = epoch 2 (epoch 1 holds graph tracing on both sides): training steps + validation + whatever
the job does at the epoch's end. The compiled train function is timed inside every step (a wrapper
around `model.train_function`), and after its epochs the job's trained model runs that function
directly on in-memory batches (the bare compiled step), which splits the step into compute, input and
Keras' loop:
- data wait = (train function fed by the pipeline - bare step from memory) / step: what the input
  pipeline costs the step, waits and CPU contention together (on 2 cores the pipeline's threads share
  the cores with the model, so most of its cost shows as slower compute, not as waiting);
- loop overhead = (step period - train function) / bare step, in the job's own epoch 2.
Peak RSS: VmHWM of the job's process when `fit_inputs` returns (every step and checkpoint included).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks import data as bdata
from benchmarks.common import REPO, CpuShare, Figure, Settings, log, merge_cpu
from benchmarks.procs import run_measured

MODELS = {"densenet201": 224, "efficientnetb2": 260}
STEPS = {"densenet201": 2, "efficientnetb2": 3}  # per epoch: the steps take 25-50 s here, tracing 2-3 min
CPU_RECIPE = ("efficientnetb0", 160)  # configs/cpu-fast.yaml
CPU_STEPS = 4
WAIT_TARGET = 5.0  # % of step time
LOOP_TARGET = 5.0  # % over the bare compiled train step
RSS_TARGET_GIB = 4.0
BATCH = 32


def run_script(settings: Settings, script: str, spec: dict[str, Any], name: str) -> dict[str, Any]:
    """A benchmark script in its own process: its JSON result, plus its sampled memory and wall time."""
    folder = settings.work / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    spec_path, result_path, log_path = (
        folder / f"{name}.{ext}" for ext in ("spec.json", "result.json", "log")
    )
    spec_path.write_text(json.dumps(spec, indent=1))
    result_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(REPO / "benchmarks" / script), str(spec_path), str(result_path)]
    proc = run_measured(cmd, cwd=REPO, log_path=log_path, timeout=settings.pick(1800, 300))
    if proc["rc"] != 0 or not result_path.is_file():
        tail = log_path.read_text(errors="replace")[-3000:] if log_path.is_file() else ""
        raise RuntimeError(f"{script} failed (rc {proc['rc']}); log {log_path}:\n{tail}")
    return json.loads(result_path.read_text()) | {"process": proc, "log": str(log_path)}


def job_spec(
    settings: Settings, art: bdata.Artifact, backbone: str, recipe: str, steps: int, extras: bool
) -> dict:
    name = f"job-{backbone}-{art.image_size}{'-tiny' if settings.tiny else ''}"
    out = settings.work / "runs" / name
    return {
        "artifact": str(art.folder),
        "backbone": backbone,
        "image_size": art.image_size,
        "recipe": recipe,
        "steps": steps,
        "epochs": 2,
        "batch_size": settings.pick(BATCH, 8) if recipe == "paper" else settings.pick(None, 8),
        "out": str(out),
        "state_dir": str(settings.work / "runs" / f"{name}.state"),
        "extras": extras,
        "extra_steps": 2,  # bare train-function calls on in-memory batches
    }


def clear(spec: dict[str, Any]) -> None:
    """A fresh job: no finished model folder, no resume state from an earlier benchmark run."""
    import shutil

    for key in ("out", "state_dir"):
        shutil.rmtree(spec[key], ignore_errors=True)


def steady_epoch(result: dict[str, Any]) -> dict[str, Any]:
    return result["epochs"][-1]


def run(settings: Settings, out_dir: Path) -> tuple[list[Figure], dict[str, Any]]:
    """`make bench`: the CPU recipe's workflow job alone (the model the infer benchmark uses)."""
    backbone, size = settings.pick(CPU_RECIPE, ("simplecnn", 32))
    art = bdata.artifact(settings, size)
    steps = settings.pick(CPU_STEPS, 2)
    spec = job_spec(settings, art, backbone, "cpu", steps, extras=True)
    clear(spec)
    log(f"train: the CPU recipe's workflow job ({backbone}@{size}), 2 epochs x {steps} steps + in memory")
    with CpuShare() as share:
        job = run_script(settings, "train_job.py", spec, f"job-cpu-{backbone}-{size}")
    label = f"{backbone} @{size}"
    epoch, first = steady_epoch(job), job["epochs"][0]["epoch_s"]
    step = _median(epoch["step_s"])
    batch = job["batch_size"]
    figures = [
        Figure(
            "train",
            f"CPU recipe ({label}) epoch time, workflow job",
            epoch["epoch_s"],
            "s",
            note=f"batch {batch}, {steps} steps + validation on {job['val_images']} images, epoch 2 of 2 "
            f"(epoch 1 with graph tracing: {first:.0f} s), the resume checkpoint written at its end; "
            f"{job['precision']}, XLA {job['jit_compile']}, {job['placement']}; the comparison with plain "
            "model.fit on the paper's networks is `make bench-train`",
            details={"job": job},
            cpu=share.result,
        ),
        Figure(
            "train",
            f"CPU recipe ({label}) training images/s (median step)",
            batch / step,
            "images/s",
            note="steps of epoch 2 over the memory-mapped augmented shards (tf.data, flips + rotation in "
            "OpenCV threads)",
            cpu=share.result,
        ),
        *step_figures(f"CPU recipe ({label})", job, None, share.result),
        rss_figure(job, f"peak RSS of the workflow job, CPU recipe ({label})", RSS_TARGET_GIB, share.result),
    ]
    return figures, {"runs": {backbone: {"job": job}}, "cpu_recipe_model": spec["out"]}


def run_paper(settings: Settings, out_dir: Path) -> tuple[list[Figure], dict[str, Any]]:
    """`make bench-train`: the workflow's job vs plain model.fit on the paper's networks."""
    models = settings.pick(MODELS, {"simplecnn": 32})
    figures: list[Figure] = []
    extra: dict[str, Any] = {"runs": {}}
    for i, (backbone, size) in enumerate(models.items()):
        steps = settings.pick(STEPS.get(backbone, 3), 2)
        batch = settings.pick(BATCH, 8)
        art = bdata.artifact(settings, size)
        spec = job_spec(settings, art, backbone, "paper", steps, extras=True)
        clear(spec)
        base_spec = {
            "artifact": str(art.folder),
            "files": str(art.files),
            "val_files": str(art.val_files),
            "backbone": backbone,
            "image_size": size,
            "batch_size": batch,
            "steps": steps,
            "epochs": 2,
        }
        tag = f"{backbone}-{size}{'-tiny' if settings.tiny else ''}"
        job_what = f"workflow job, 2 epochs x {steps} steps of {batch} + in memory"
        sides = [
            ("train_job.py", spec, f"job-{tag}", job_what),
            ("baseline_train.py", base_spec, f"baseline-{tag}", f"plain model.fit, 2 epochs x {steps} steps"),
        ]
        done = {}
        for script, side, name, what in sides if i % 2 == 0 else sides[::-1]:  # alternate: the host drifts
            log(f"train-paper {backbone}@{size}: {what}")
            with CpuShare() as share:
                res = run_script(settings, script, side, name)
            done[script] = res, share.result
        (ls, ls_cpu), (base, base_cpu) = done["train_job.py"], done["baseline_train.py"]
        figures += comparison_figures(f"{backbone} @{size}", ls, base, merge_cpu(ls_cpu, base_cpu), steps)
        figures += step_figures(f"{backbone} @{size}", ls, base, ls_cpu)
        figures.append(
            rss_figure(ls, f"peak RSS of the workflow job, paper recipe ({backbone} @{size})", None, ls_cpu)
        )
        extra["runs"][backbone] = {"job": ls, "baseline": base}
    return figures, extra


def comparison_figures(
    label: str, ls: dict[str, Any], base: dict[str, Any], cpu: dict[str, Any], steps: int
) -> list[Figure]:
    e_ls, e_base = steady_epoch(ls), steady_epoch(base)
    step_pipe, step_base = _median(e_ls["step_s"]), _median(e_base["step_s"])
    first = ls["epochs"][0]["epoch_s"], base["epochs"][0]["epoch_s"]
    batch = ls["batch_size"]
    log(
        f"  job epoch {e_ls['epoch_s']:.1f} s (step {step_pipe:.2f} s), baseline {e_base['epoch_s']:.1f} s "
        f"(step {step_base:.2f} s); bare step from memory {ls['extras']['bare_median_s']:.2f} s"
    )
    return [
        Figure(
            "train-paper",
            f"{label} epoch time: workflow job vs plain model.fit",
            e_ls["epoch_s"],
            "s",
            baseline=e_base["epoch_s"],
            ratio=e_base["epoch_s"] / e_ls["epoch_s"],
            note=f"ratio = baseline s / job s (higher: the job is faster); batch {batch}, {steps} steps "
            f"+ validation on {ls['val_images']} images, epoch 2 of 2; the job also writes its resume "
            f"checkpoint (last.keras + best weights) every epoch, the baseline nothing. Steps: job "
            f"{step_pipe:.2f} s, baseline {step_base:.2f} s (median). Epoch 1 with graph tracing: job "
            f"{first[0]:.0f} s, baseline {first[1]:.0f} s. {ls['precision']}, XLA {ls['jit_compile']}, "
            f"{ls['placement']}",
            details={"job": ls, "baseline": base},
            cpu=cpu,
        ),
        Figure(
            "train-paper",
            f"{label} training images/s (median step)",
            batch / step_pipe,
            "images/s",
            baseline=batch / step_base,
            ratio=step_base / step_pipe,
            note="steps of epoch 2: the job over the memory-mapped augmented shards (tf.data, flips + "
            "rotation in OpenCV threads), the baseline over BMP files (ImageDataGenerator, scipy affine)",
            cpu=cpu,
        ),
    ]


def step_figures(
    label: str, ls: dict[str, Any], base: dict[str, Any] | None, cpu: dict[str, Any]
) -> list[Figure]:
    """Data wait and Keras loop overhead of the job's steady epoch (and the plain script's, if given)."""
    from benchmarks.timing import periods

    bench = "train" if base is None else "train-paper"
    e_ls, x = steady_epoch(ls), ls["extras"]
    step_pipe, fn_pipe, step_bare = _median(e_ls["step_s"]), _median(e_ls["function_s"]), x["bare_median_s"]
    raw_wait = 100 * (fn_pipe - step_bare) / step_pipe
    wait = max(0.0, raw_wait)
    alone = x.get("pipeline_alone_s_per_batch")
    note = (
        f"the train function fed by the pipeline {fn_pipe:.2f} s (epoch 2, median) vs called directly on "
        f"in-memory batches {step_bare:.2f} s (right after, same process), over the step "
        f"{step_pipe:.2f} s ({raw_wait:+.1f}% before clamping at 0)"
    )
    base_wait = None
    if base is not None:
        e_base = steady_epoch(base)
        step_base, fn_base = _median(e_base["step_s"]), _median(e_base["function_s"])
        raw_base_wait = 100 * (fn_base - step_bare) / step_base
        base_wait = max(0.0, raw_base_wait)
        note += (
            f"; baseline = the same split of the plain script's step (ImageDataGenerator's batches are "
            f"made inside its train function: {fn_base:.2f} s of {step_base:.2f} s, {raw_base_wait:+.1f}%)"
        )
    if wait >= WAIT_TARGET and alone:
        note += (
            f". Over {WAIT_TARGET:.0f}%: the pipeline alone needs {alone:.3f} s of the machine per batch "
            f"({100 * alone / step_pipe:.1f}% of the step), run in threads that share the "
            f"{ls['threads'] or '?'} cores with the model"
        )
    pairs = periods(e_ls)
    added = sum(p - f for p, f in pairs) / len(pairs)
    loop = 100 * added / step_bare
    loop_note = (
        f"what fit adds around the train function in the job's epoch 2 (its callbacks: throughput, CSV, "
        f"TensorBoard, the timer; Keras' loop): {1000 * added:+.1f} ms per step over {len(pairs)} full "
        f"step(s), vs the bare compiled step {step_bare:.2f} s"
    )
    base_loop = None
    if base is not None:
        base_pairs = periods(steady_epoch(base))
        base_added = sum(p - f for p, f in base_pairs) / len(base_pairs)
        base_loop = max(0.0, 100 * base_added / step_bare)
        loop_note += f"; baseline = the plain script's {1000 * base_added:+.1f} ms"
    return [
        Figure(
            bench,
            f"{label} data wait (input pipeline's cost), % of step time",
            wait,
            "%",
            baseline=base_wait,
            target=f"< {WAIT_TARGET:.0f}%",
            met=wait < WAIT_TARGET,
            note=note,
            cpu=cpu,
        ),
        Figure(
            bench,
            f"{label} Keras loop overhead vs the bare compiled train step",
            max(0.0, loop),
            "%",
            baseline=base_loop,
            target=f"<= {LOOP_TARGET:.0f}%",
            met=loop <= LOOP_TARGET,
            note=loop_note,
            cpu=cpu,
        ),
    ]


def _median(values: list[float]) -> float:
    from benchmarks.timing import median

    return median(values)


def rss_figure(res: dict[str, Any], name: str, target: float | None, cpu: dict[str, Any]) -> Figure:
    peak = res["rss_hwm_gib"]
    epochs = ", ".join(f"after epoch {e['epoch'] + 1} {e['rss_hwm_gib']:.2f}" for e in res["epochs"])
    steps = sum(e["steps"] for e in res["epochs"])
    note = (
        f"VmHWM of the job's process when fit_inputs returns: {res['train_images']:,} training samples "
        f"(8 memory-mapped shards), {res['val_images']} val, batch {res['batch_size']}, {steps} steps in "
        f"{len(res['epochs'])} epochs with checkpoints; high-water mark before fit_inputs "
        f"{res['rss_hwm_gib_before_fit']:.2f} GiB (TensorFlow, libraries, inputs), {epochs} GiB; at the end "
        f"RssAnon {res['rss_anon_gib_end']:.2f} GiB, RssFile {res['rss_file_gib_end']:.2f} GiB "
        f"(memory-mapped pages + libraries)"
    )
    met = None if target is None else peak < target
    if met is False:
        hwm = [e["rss_hwm_gib"] for e in res["epochs"]]
        growth = hwm[-1] - hwm[0] if hwm else 0.0
        note += (
            f". Over {target:.0f} GiB: {peak - res['rss_hwm_gib_before_fit']:.2f} GiB of it came during "
            f"fit_inputs (model, optimiser state, graph, a batch's activations, the validation pass), "
            f"{growth:+.2f} GiB after the first epoch"
        )
    return Figure(
        "train" if "CPU recipe" in name else "train-paper",
        name,
        peak,
        "GiB",
        target=f"< {target:.0f} GiB" if target is not None else "",
        met=met,
        note=note,
        details={"process": res.get("process")},
        cpu=cpu,
    )
