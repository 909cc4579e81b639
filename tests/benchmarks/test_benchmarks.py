"""`make bench` machinery: every benchmark runs once at a tiny size, results and table are well formed.

Speed targets are never asserted here (they are `make bench`'s job); this proves the benchmarks work and
that their instruments measure what they say.
"""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.bench_workflow import trace_tree  # noqa: E402
from benchmarks.gpu_figures import spread  # noqa: E402
from benchmarks.procs import run_measured  # noqa: E402
from benchmarks.run import ORDER, TINY  # noqa: E402

from benchmarks import common  # noqa: E402

RUN = [sys.executable, str(REPO / "benchmarks" / "run.py")]


def _figure(**kw: object) -> common.Figure:
    base = {"benchmark": "train", "name": "x images/s", "value": 10.0, "unit": "images/s"}
    return common.Figure(**(base | kw))  # type: ignore[arg-type]


def test_readme_section_is_rewritten_and_the_rest_kept(tmp_path: Path) -> None:
    settings = common.Settings(command="python benchmarks/run.py --only train")
    out = tmp_path / "results"
    fig = _figure(
        baseline=4.0,
        ratio=2.5,
        target=">= 2x",
        met=True,
        note="a | b",
        cpu={"shared": True, "other_load_cores": 0.8},
    )
    common.write_result(out, "train", [fig], settings, {"seconds": 12.0})
    readme = tmp_path / "README.md"
    readme.write_text(f"# Bench\n\nintro\n\n{common.BEGIN}\nold table\n{common.END}\n\nfooter\n")
    common.update_readme(readme, out)
    text = readme.read_text()
    assert "old table" not in text
    assert text.startswith("# Bench\n\nintro\n") and text.rstrip().endswith("footer")
    row = next(line for line in text.splitlines() if line.startswith("| x images/s"))
    assert "10.0 images/s" in row and "4.00 images/s" in row and "2.50x" in row
    assert "yes (0.80 cores)" in row and "a \\| b" in row  # a pipe in a note must not break the table
    doc = json.loads((out / "train.json").read_text())
    assert doc["command"] == settings.command and doc["machine"]["cores"] >= 1
    assert doc["machine"]["tensorflow"] and doc["machine"]["keras"]
    assert doc["date"].endswith("Z") and "12 s" in text


def test_readme_without_markers_gets_a_section(tmp_path: Path) -> None:
    out = tmp_path / "results"
    common.write_result(out, "input", [_figure(benchmark="input")], common.Settings(), {})
    readme = tmp_path / "README.md"
    readme.write_text("# Bench\n")
    common.update_readme(readme, out)
    text = readme.read_text()
    assert text.index(common.BEGIN) < text.index("### input") < text.index(common.END)


SPIN = "import time\nt = time.time()\nwhile time.time() - t < 1.5:\n    pass\n"


def test_cpu_share_counts_our_children_as_ours() -> None:
    spin = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        with common.CpuShare() as share:
            time.sleep(1.0)
    finally:
        spin.wait()
    assert share.result["own_cores"] > 0.3


def test_cpu_share_sees_another_process() -> None:
    """An orphaned spinner (its parent shell exits at once) is not ours: it must show as other load."""
    subprocess.run(["sh", "-c", f"{sys.executable} -c '{SPIN}' >/dev/null 2>&1 &"], check=True)
    with common.CpuShare() as share:
        time.sleep(1.0)
    time.sleep(0.6)
    assert share.result["other_load_cores"] > 0.3
    assert share.result["shared"] is True


def test_peak_rss_of_a_subprocess(tmp_path: Path) -> None:
    code = "import numpy as np, time\na = np.ones(300 * 2**20 // 8)\ntime.sleep(0.6)\n"
    res = run_measured([sys.executable, "-c", code], log_path=tmp_path / "log.txt", interval=0.05, pss=True)
    assert res["rc"] == 0
    assert 0.28 < res["max_rss_gib"] < 1.5
    assert res["tree_pss_gib"] > 0.25


def test_peak_rss_is_the_childs_own_not_its_parents(tmp_path: Path) -> None:
    """ru_maxrss would report this test process's 1 GiB for a child that never used it."""
    import numpy as np

    ballast = np.ones(2**30 // 8)  # resident in the parent when it forks
    code = "import time\ntime.sleep(0.3)\n"
    res = run_measured([sys.executable, "-c", code], log_path=tmp_path / "log.txt", interval=0.05)
    assert ballast[-1] == 1.0
    assert res["max_rss_gib"] < 0.3
    assert res["ru_maxrss_gib"] > 0.9  # the artefact the sampled high-water mark avoids


def test_snakemake_share_counts_only_time_without_a_job(tmp_path: Path) -> None:
    """A stand-in `snakemake` that waits 0.6 s itself, runs one 1 s job, waits 0.6 s: ~1.2 s are its own."""
    job = tmp_path / ".snakemake" / "scripts" / "tmpjob.py"  # where Snakemake puts a `script:` job
    job.parent.mkdir(parents=True)
    job.write_text("import time\ntime.sleep(1)\n")
    fake = tmp_path / "snakemake"
    fake.write_text(
        f"#!{sys.executable}\nimport subprocess, sys, time\ntime.sleep(0.6)\n"
        f"subprocess.run([sys.executable, {str(job)!r}], check=True)\ntime.sleep(0.6)\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    res = trace_tree([str(fake)], tmp_path, tmp_path / "log.txt", timeout=60)
    assert res["rc"] == 0 and res["snakemake_processes"] == 1 and res["job_processes"] == 1
    assert 0.8 < res["jobs_covered_s"] < 1.6, res
    assert res["snakemake_own_s"] > 1.0 and res["before_first_job_s"] > 0.5 and res["after_last_job_s"] > 0.5
    other = tmp_path / "not-snakemake"
    other.write_text(f"#!{sys.executable}\nimport subprocess\nsubprocess.run(['sleep', '0.5'], check=True)\n")
    other.chmod(other.stat().st_mode | stat.S_IEXEC)
    idle = trace_tree([str(other)], tmp_path, tmp_path / "log2.txt", timeout=60)
    assert idle["job_processes"] == 0 and idle["jobs_covered_s"] == 0.0  # children of other programs


def test_ten_gpus_spread_the_longest_job_first() -> None:
    assert spread([3.0, 1.0, 1.0, 1.0], 2) == 3.0
    assert spread([2.0] * 10, 10) == 2.0
    assert spread([2.0] * 10, 1) == 20.0
    assert spread([5.0, 4.0, 3.0, 3.0, 3.0], 2) == 10.0  # greedy, as a scheduler admits jobs (best: 9)


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    out = ["--out", str(tmp_path / "r"), "--work", str(tmp_path / "w")]
    unknown = subprocess.run([*RUN, "--only", "nonsense", *out], capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown benchmark 'nonsense'" in unknown.stderr
    dry = subprocess.run([*RUN, "--only", "train", "--dry-run", *out], capture_output=True, text=True)
    assert dry.returncode == 2 and "--only gpu" in dry.stderr
    if not common.gpu_names():
        gpu = subprocess.run([*RUN, "--only", "gpu", *out], capture_output=True, text=True)
        assert gpu.returncode == 2 and "no GPU is visible" in gpu.stderr
        assert "Traceback" not in gpu.stderr


def _check_figures(doc: dict[str, Any]) -> None:
    assert doc["tiny"] is True and doc["machine"]["cpu"] and doc["figures"], doc["benchmark"]
    for fig in doc["figures"]:
        value = fig["value"]
        assert value is None or (math.isfinite(value) and value >= 0), fig
        if fig["ratio"] is not None:
            assert fig["ratio"] > 0 and fig["baseline"] is not None, fig
        if fig["target"] and fig["value"] is not None:
            assert fig["met"] in (True, False), fig


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    out, work = root / "results", root / "work"
    cmd = [*RUN, "--tiny", "--out", str(out), "--work", str(work)]
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def _figures(out: Path, name: str) -> dict[str, dict[str, Any]]:
    doc = json.loads((out / f"{name}.json").read_text())
    _check_figures(doc)
    return {f["name"]: f for f in doc["figures"]}


@pytest.mark.slow
def test_every_benchmark_runs_tiny(tiny_run: Path) -> None:
    readme = (tiny_run / "README.md").read_text()
    assert set(ORDER) < set(TINY) and "train-paper" not in ORDER  # make bench-train runs it, not make bench
    for name in TINY:
        assert f"### {name}" in readme
        _figures(tiny_run, name)
    assert "### gpu" not in readme  # only asked for on a GPU machine (gpu.sh)


@pytest.mark.slow
def test_input_compares_the_same_images_with_each_baseline(tiny_run: Path) -> None:
    figs = _figures(tiny_run, "input")
    idg = figs["leukoscope tf.data vs ImageDataGenerator.flow_from_directory"]
    assert idg["target"] == ">= 10x" and idg["baseline"] > 0
    assert math.isclose(idg["ratio"], idg["value"] / idg["baseline"], rel_tol=1e-9)
    assert figs["ceiling: raw memory-map read of the same rows"]["value"] > 0
    assert any("image_dataset_from_directory" in name for name in figs)


@pytest.mark.slow
def test_train_splits_the_step_and_reads_the_jobs_memory(tiny_run: Path) -> None:
    doc = json.loads((tiny_run / "train.json").read_text())
    figs = {f["name"]: f for f in doc["figures"]}
    wait = next(f for n, f in figs.items() if "data wait" in n)
    loop = next(f for n, f in figs.items() if "loop overhead" in n)
    rss = next(f for n, f in figs.items() if "peak RSS" in n and "CPU recipe" in n)
    assert wait["target"] == "< 5%" and loop["target"] == "<= 5%" and rss["target"] == "< 4 GiB"
    assert wait["baseline"] is None and any("epoch time" in n for n in figs)
    assert 0.3 < rss["value"] < 16  # a TensorFlow process's VmHWM, in GiB
    job = doc["runs"]["simplecnn"]["job"]
    assert {"model.keras", "model_card.json", "history.csv"} <= set(job["model_files"])
    assert len(job["epochs"]) == 2 and all(e["steps"] == 2 for e in job["epochs"])
    assert len(job["extras"]["bare_step_s"]) == 2
    for epoch in job["epochs"]:  # the train function is timed inside every step, and takes part of it
        assert len(epoch["function_s"]) == epoch["steps"]
        assert all(0 < f <= s for f, s in zip(epoch["function_s"], epoch["step_s"], strict=True))


@pytest.mark.slow
def test_train_paper_compares_the_job_with_plain_fit(tiny_run: Path) -> None:
    doc = json.loads((tiny_run / "train-paper.json").read_text())
    figs = {f["name"]: f for f in doc["figures"]}
    epoch = next(f for n, f in figs.items() if "epoch time: workflow job vs plain model.fit" in n)
    assert epoch["baseline"] > 0 and math.isclose(epoch["ratio"], epoch["baseline"] / epoch["value"])
    assert next(f for n, f in figs.items() if "data wait" in n)["baseline"] is not None
    run = doc["runs"]["simplecnn"]
    assert run["baseline"]["train_files"] == 32 and len(run["baseline"]["epochs"]) == 2
    assert len(run["job"]["epochs"]) == 2 and run["job"]["recipe"] == "paper"


@pytest.mark.slow
def test_infer_times_the_default_call_after_the_first(tiny_run: Path) -> None:
    """The measured call is `leukoscope predict RUN` with default options on a run folder as training
    left it: the first call (which builds model.tflite) is reported apart from the later ones."""
    doc = json.loads((tiny_run / "infer.json").read_text())
    figs = {f["name"]: f for f in doc["figures"]}
    default = next(f for n, f in figs.items() if "(default: LiteRT, cached on first use)" in n)
    assert default["target"] == ">= 2x" and default["baseline"] > 0
    first = next(f for n, f in figs.items() if "first call on a fresh run folder" in n)
    assert "converted model.keras to model.tflite" in first["note"]
    assert 0 < doc["conversion_s"] < doc["first_call_s"]
    for call in ("default (tflite)", "keras", "onnx"):
        assert f"label agreement, {call} vs the plain model.predict script" in figs
    for backend in ("keras", "onnx", "tflite"):
        assert any(n.startswith(f"batch-1 latency, {backend}") for n in figs)
    assert doc["images"] == 24 and set(doc["process_seconds"]) == {"default", "keras", "onnx", "baseline"}
    assert doc["agreement"]["first"] == doc["agreement"]["default"]


@pytest.mark.slow
def test_workflow_share_and_noop_rerun(tiny_run: Path) -> None:
    doc = json.loads((tiny_run / "workflow.json").read_text())
    share = doc["figures"][0]
    assert share["name"].startswith("Snakemake's own share") and share["target"] == "< 5%"
    first, rerun = doc["first"], doc["rerun"]
    assert first["job_processes"] >= 2 and first["snakemake_processes"] >= 1
    assert 0 < first["snakemake_own_s"] <= first["wall_s"]
    assert rerun["job_processes"] < first["job_processes"]  # nothing to redo


@pytest.mark.slow
def test_gpu_script_dry_run(tmp_path: Path) -> None:
    """Every code path of benchmarks/gpu.sh on the CPU: five processes compile side by side, then each
    item is measured alone (2 and 3 processes over one window), the input pipeline, the projections."""
    out = tmp_path / "results"
    cmd = [str(REPO / "benchmarks" / "gpu.sh"), "--dry-run", "--out", str(out), "--work", str(tmp_path / "w")]
    env = os.environ | {"PYTHON": sys.executable}
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads((out / "gpu.json").read_text())
    assert doc["dry_run"] is True
    res = doc["result"]
    status = {r["name"]: r["status"] for r in res["items"]}
    measured = ("b2_fp32", "b2_bf16", "share2", "share3", "dn_fp32", "b2_fp32_predict", "pipeline")
    assert all(status[n] == "ok" for n in measured), res["items"]
    share3 = next(r for r in res["items"] if r["name"] == "share3")
    assert len(share3["jobs"]) == 3 and all(j["images_per_s"] > 0 for j in share3["jobs"].values())
    assert math.isclose(
        share3["aggregate_images_per_s"], sum(j["images_per_s"] for j in share3["jobs"].values())
    )
    procs = res["processes"]
    assert procs["b2_bf16"]["policy"] == "mixed_bfloat16" and all(
        p["first_step_s"] > 0 for p in procs.values()
    )
    names = [f["name"] for f in doc["figures"]]
    assert any("3 x simplecnn @32 float32 sharing one GPU" in n for n in names), names
    assert any("mixed_bfloat16 train images/s" in n for n in names)
    assert any("input pipeline alone" in n for n in names) and any("data wait" in n for n in names)
    assert any(n.startswith("input pipeline per job, projected") for n in names)
    one = next(f for f in doc["figures"] if f["name"].startswith("Table 2 grid on one GPU (projected)"))
    ten = next(f for f in doc["figures"] if f["name"].startswith("Table 2 grid on ten GPUs"))
    assert one["value"] > 0 and math.isclose(ten["ratio"], one["value"] / ten["value"], rel_tol=1e-9)
    assert "DRY RUN" in one["note"] and "dry run on the CPU" in (out / "README.md").read_text()
    # bringing it home (gpu_import.py): refused as a dry run unless allowed; then results + tables
    home = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_import.py"), str(out),
                           "--results", str(tmp_path / "home"), "--readme", str(tmp_path / "R.md")],
                          capture_output=True, text=True)  # fmt: skip
    assert home.returncode == 2 and "--dry-run result" in home.stderr
    home = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_import.py"), str(out),
                           "--results", str(tmp_path / "home"), "--readme", str(tmp_path / "R.md"),
                           "--allow-dry-run"], capture_output=True, text=True)  # fmt: skip
    assert home.returncode == 0, home.stderr
    assert json.loads((tmp_path / "home" / "gpu.json").read_text())["result"] == res
    assert "### gpu" in (tmp_path / "R.md").read_text()
    assert "| 3 x simplecnn @32 sharing the GPU | float32 |" in home.stdout
    raw = tmp_path / "w" / "runs" / "gpu" / "result.json"  # a run that stopped before its gpu.json
    again = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_import.py"), str(raw), "--results",
                            str(tmp_path / "raw"), "--readme", str(tmp_path / "raw.md"), "--allow-dry-run"],
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 0 and again.stdout.split("\n", 2)[2] == home.stdout.split("\n", 2)[2]
