"""The GPU benchmark's figures from its result (`bench_gpu.run`): speeds, sharing, input, Table 2's hours.

    job hours = epochs x (20,050 / training images/s + validation images / predict images/s) + first step
    one GPU  = the grid's jobs one after another; ten GPUs = spread, longest first; and one GPU running
    2 jobs at a time (the measured 2-job aggregate speed-up, taken from EfficientNetB2 for every job)

with the fastest measured configuration per backbone and config.yaml's epochs (an upper bound: early
stopping ends most runs sooner), grid and augmented set size (`augment.target: auto` = the paper's 20,050);
validation = the preliminary test's 1,867 images (the paper protocol). Data preparation and evaluation
are not in it.

The input pipeline's per-job rate, where TensorFlow is absent, is projected from its per-core rate on a
CPU (`benchmarks/results/input.json`, 224 px) x the threads a job gets (`train_threads`) x the pixel
ratio to the network's size: an assumption (linear in cores and pixels), said so in every such figure.
"""

from __future__ import annotations

import json
import os
from typing import Any

from benchmarks.common import REPO, RESULTS, Figure

VAL_IMAGES = 1_867  # the paper protocol validates on C-NMC's labelled preliminary test
INPUT_SIZE = 224  # the size input.json's pipeline figures were measured at
WAIT_TARGET = 5.0


def _item(res: dict[str, Any], name: str) -> dict[str, Any] | None:
    found = next((r for r in res["items"] if r["name"] == name), None)
    return found if found is not None and found["status"] == "ok" else None


def _proc(res: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    return res["processes"][sorted(item["jobs"])[0]]


def label(proc: dict[str, Any]) -> str:
    return f"{proc['backbone']} @{proc['size']} {proc['policy']}"


def _busy(item: dict[str, Any]) -> str:
    return f"; measured while {', '.join(item['others_busy'])} still compiled" if item["others_busy"] else ""


def train_figures(res: dict[str, Any], cpu: dict[str, Any]) -> list[Figure]:
    device = ", ".join(res["gpus"]) or "CPU (dry run)"
    how = (
        f"{device}, Keras on {res['backend']}; batch {res['batch_size']} from memory, {res['loss']}, "
        "model.fit with a per-step callback"
    )
    figures = []
    fp32 = _item(res, "b2_fp32")
    alone = fp32["aggregate_images_per_s"] if fp32 else None
    for name in ("b2_fp32", "b2_bf16", "dn_fp32", "b2_fp32_again"):
        item = _item(res, name)
        if item is None:
            continue
        proc = _proc(res, item)
        base = alone if name in ("b2_bf16", "b2_fp32_again") and alone else None
        value = item["aggregate_images_per_s"]
        again = ", again with nothing else running" if name == "b2_fp32_again" else ""
        figures.append(
            Figure(
                "gpu",
                f"{label(proc)} train images/s{again}",
                value,
                "images/s",
                baseline=base,
                ratio=value / base if base else None,
                note=f"{how}; {item['window_s']:.0f} s window{_busy(item)}"
                + ("; baseline = float32" if base else ""),
                cpu=cpu,
            )
        )
        if name != "b2_fp32_again":
            figures.append(
                Figure(
                    "gpu",
                    f"{label(proc)} first training step (trace + compile)",
                    proc.get("first_step_s"),
                    "s",
                    note=f"compiled beside the other processes ({len(res['processes'])} in all)",
                )
            )
    for n in (2, 3):
        item = _item(res, f"share{n}")
        if item is None or not alone:
            continue
        value = item["aggregate_images_per_s"]
        jobs = ", ".join(f"{d['images_per_s']:.0f}" for d in item["jobs"].values() if d.get("images_per_s"))
        figures.append(
            Figure(
                "gpu",
                f"{n} x {label(_proc(res, item))} sharing one GPU: train images/s together",
                value,
                "images/s",
                baseline=alone,
                ratio=value / alone,
                note=f"separate processes over the same {item['window_s']:.0f} s window: "
                f"{jobs} images/s each; baseline = one job alone{_busy(item)}",
                cpu=cpu,
            )
        )
    for name in ("b2_fp32_predict", "b2_bf16_predict", "dn_fp32_predict"):
        item = _item(res, name)
        if item is not None:
            proc = _proc(res, item)
            figures.append(
                Figure(
                    "gpu",
                    f"{label(proc)} predict images/s (batch {res['predict_batch']})",
                    item["aggregate_images_per_s"],
                    "images/s",
                    note=f"predict_on_batch from memory; first call {proc.get('predict_first_s', 0):.0f} s"
                    f"{_busy(item)}",
                )
            )
    return figures


def input_rate_per_core() -> tuple[float, str] | None:
    """LeukoScope's tf.data training input (flips + rotation) per CPU core at 224 px, from input.json."""
    path = RESULTS / "input.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    fig = next(
        (f for f in doc["figures"] if f["name"].startswith("leukoscope tf.data vs ImageDataGenerator")), None
    )
    cores = doc.get("machine", {}).get("cores")
    if not fig or not fig.get("value") or not cores:
        return None
    cpu, date = doc["machine"].get("cpu", "?"), str(doc.get("date", "?"))[:10]
    source = f"{fig['value']:,.0f} images/s on {cores} cores of {cpu}, {date}"
    return fig["value"] / cores, source


def input_projection(res: dict[str, Any]) -> dict[str, Any]:
    """Per job: the input rate the measured GPU speed needs vs what the job's cores would deliver."""
    from leukoscope.workflow.machine import train_threads

    per_core = input_rate_per_core()
    if per_core is None:
        return {"skipped": "no benchmarks/results/input.json with the tf.data figure"}
    rate, source = per_core
    cores = os.cpu_count() or 1
    rows = []
    for name, jobs in (("b2_fp32", 1), ("b2_bf16", 1), ("dn_fp32", 1), ("share2", 2), ("share3", 3)):
        item = _item(res, name)
        if item is None:
            continue
        proc = _proc(res, item)
        threads = train_threads(cores, ["0"], None, 2, jobs_per_gpu=jobs)
        need = item["aggregate_images_per_s"] / jobs
        have = rate * threads * (INPUT_SIZE / proc["size"]) ** 2
        rows.append(
            {
                "item": name,
                "label": label(proc),
                "jobs_per_gpu": jobs,
                "threads_per_job": threads,
                "needed_images_per_s": need,
                "projected_images_per_s": have,
            }
        )
    return {"per_core_images_per_s": rate, "source": source, "cores": cores, "rows": rows}


def pipeline_figures(res: dict[str, Any], cpu: dict[str, Any]) -> list[Figure]:
    figures = []
    item = _item(res, "pipeline")
    if item is not None:
        p = next(iter(item["jobs"].values()))
        train = p["memory_images_per_s"]
        ratio = p["pipeline_alone_images_per_s"] / train if train else None
        figures += [
            Figure(
                "gpu",
                f"input pipeline alone vs GPU training ({label(_proc(res, item))})",
                p["pipeline_alone_images_per_s"],
                "images/s",
                baseline=train,
                ratio=ratio,
                target=">= 1x",
                met=ratio is not None and ratio >= 1.0,
                cpu=cpu,
                note="training_dataset (flips + rotation in OpenCV threads, "
                f"{p['cpu_threads']} threads), no model",
            ),
            Figure(
                "gpu",
                "data wait with the pipeline feeding the GPU, % of step time",
                p["data_wait_pct"],
                "%",
                target=f"< {WAIT_TARGET:.0f}%",
                met=p["data_wait_pct"] is not None and p["data_wait_pct"] < WAIT_TARGET,
                note=f"{p['fed_images_per_s'] or 0:.0f} images/s fed by the pipeline vs {train or 0:.0f} "
                "from memory, the same compiled model",
                cpu=cpu,
            ),
        ]
    elif not res["tensorflow_installed"]:
        figures.append(
            Figure(
                "gpu",
                "input pipeline (tf.data) on this machine",
                None,
                "images/s",
                note="skipped: TensorFlow is not installed here (Keras ran on "
                f"{res['backend']}); the per-job rate is projected below from the CPU",
            )
        )
    proj = res.get("input_projection", {})
    for row in proj.get("rows", []):
        ratio = row["projected_images_per_s"] / row["needed_images_per_s"]
        figures.append(
            Figure(
                "gpu",
                f"input pipeline per job, projected: {row['label']}, {row['jobs_per_gpu']} job(s) per GPU",
                row["projected_images_per_s"],
                "images/s",
                baseline=row["needed_images_per_s"],
                ratio=ratio,
                target=">= 1x",
                met=ratio >= 1.0,
                note=f"{proj['per_core_images_per_s']:.0f} images/s per core (input.json: "
                f"{proj['source']}) x {row['threads_per_job']} threads per job (train_threads, "
                f"{proj['cores']} cores) x ({INPUT_SIZE}/size)^2; assumes the rate grows with cores; "
                "baseline = the job's measured GPU speed",
            )
        )
    return figures


# --------------------------------------------------------------------------------------------------
# Table 2's grid, projected


def grid() -> tuple[list[str], list[str], int, int]:
    """(backbones, losses, epochs, training samples) of the repository's config.yaml."""
    import yaml

    from leukoscope.preprocess.balance import PAPER_TARGET
    from leukoscope.workflow.config import WorkflowConfig

    cfg = WorkflowConfig.from_dict(yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8")))
    target = cfg.augment.target
    samples = sum(target.values()) if isinstance(target, dict) else sum(PAPER_TARGET.values())
    return list(cfg.grid.backbones), list(cfg.grid.losses), int(cfg.train.epochs), samples


def spread(durations: list[float], gpus: int) -> float:
    """Makespan of the jobs on `gpus` GPUs, longest job first onto the least loaded GPU."""
    loads = [0.0] * gpus
    for d in sorted(durations, reverse=True):
        loads[loads.index(min(loads))] += d
    return max(loads)


def projection_figures(res: dict[str, Any], dry: bool) -> list[Figure]:
    backbones, losses, epochs, samples = grid()
    best: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {}  # backbone -> (train, predict)
    for name in ("b2_fp32", "b2_bf16", "dn_fp32"):
        item = _item(res, name)
        if item is None:
            continue
        proc = _proc(res, item)
        if proc["backbone"] not in best or item["aggregate_images_per_s"] > best[proc["backbone"]][0]["rate"]:
            pred = _item(res, f"{name}_predict")
            best[proc["backbone"]] = (
                {
                    "rate": item["aggregate_images_per_s"],
                    "first_s": proc.get("first_step_s") or 0.0,
                    "label": label(proc),
                },
                None
                if not pred or not pred.get("aggregate_images_per_s")
                else {"rate": pred["aggregate_images_per_s"]},
            )
    if dry:  # the dry run's tiny network stands in for every backbone of the grid
        backbones = [next(iter(best))] if best else []
    missing = [b for b in backbones if b not in best or best[b][1] is None]
    if missing or not backbones:
        return [
            Figure(
                "gpu",
                "Table 2 grid projection",
                None,
                "h",
                note=f"not measured for {', '.join(missing) or 'any backbone'} (skipped or failed)",
            )
        ]
    jobs, parts = [], []
    for b in backbones:
        train, pred = best[b]
        assert pred is not None
        hours = (epochs * (samples / train["rate"] + VAL_IMAGES / pred["rate"]) + train["first_s"]) / 3600
        jobs += [hours] * len(losses)
        parts.append(
            f"{b} {hours:.2f} h per job ({train['label']}: {train['rate']:.0f} train / "
            f"{pred['rate']:.0f} predict images/s, first step {train['first_s']:.0f} s)"
        )
    base = (
        f"{len(jobs)} jobs ({len(backbones)} backbones x {len(losses)} losses), {epochs} epochs of "
        f"{samples:,} samples + {VAL_IMAGES:,} validation images each (config.yaml; early stopping "
        f"makes it an upper bound); " + "; ".join(parts)
    )
    if dry:
        base = "DRY RUN (tiny CNN on the CPU, not a projection of anything): " + base
    one, ten = sum(jobs), spread(jobs, 10)
    figures = [
        Figure("gpu", "Table 2 grid on one GPU (projected)", one, "h", note=base),
        Figure(
            "gpu",
            "Table 2 grid on ten GPUs (projected)",
            ten,
            "h",
            baseline=one,
            ratio=one / ten,
            note="longest job first onto the least loaded GPU; ratio = one GPU / ten",
        ),
    ]
    share, alone = _item(res, "share2"), _item(res, "b2_fp32")
    if share and alone:
        gain = share["aggregate_images_per_s"] / alone["aggregate_images_per_s"]
        figures.append(
            Figure(
                "gpu",
                "Table 2 grid on one GPU, 2 jobs at a time (projected)",
                one / gain,
                "h",
                baseline=one,
                ratio=gain,
                note=f"train.jobs_per_gpu: 2; the measured 2-job speed-up of {label(_proc(res, share))} "
                f"({gain:.2f}x) taken for every job",
            )
        )
    return figures
