"""`make bench`: run the benchmarks, write `results/<name>.json`, regenerate the README table from them.

    .venv/bin/python benchmarks/run.py                       # input, train, infer, workflow (< 30 min)
    .venv/bin/python benchmarks/run.py --only train-paper    # make bench-train: vs plain model.fit (~30 min)
    .venv/bin/python benchmarks/run.py --only input,infer    # some of them
    .venv/bin/python benchmarks/run.py --tiny --out /tmp/b   # seconds each: proves every benchmark works
    benchmarks/gpu.sh [--dry-run]                            # = run.py --only gpu (a GPU machine)

Synthetic C-NMC images and the workflow's artifacts made from them are generated once into
`benchmarks/work/` (git-ignored) and reused.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "src") not in sys.path:
    sys.path.insert(1, str(REPO / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks import common  # noqa: E402

ORDER = ("input", "train", "infer", "workflow")  # make bench; infer uses the model the train job made
ALL = (*ORDER, "train-paper", "gpu")  # only when asked for: make bench-train, benchmarks/gpu.sh
TINY = (*ORDER, "train-paper")  # --tiny without --only
RUNNERS = {"train-paper": ("train", "run_paper")}  # benchmark -> (bench_<module>, function); else (name, run)


def _runner(name: str):  # type: ignore[no-untyped-def]
    import importlib

    module, function = RUNNERS.get(name, (name, "run"))
    return getattr(importlib.import_module(f"benchmarks.bench_{module}"), function)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(ALL)}")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: proves each benchmark runs (tests)")
    parser.add_argument("--dry-run", action="store_true", help="gpu: its code paths on the CPU, tiny sizes")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    parser.add_argument(
        "--work", type=Path, default=None, help="generated data and runs (default benchmarks/work)"
    )
    parser.add_argument("--readme", type=Path, default=None, help="README whose table to regenerate")
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(TINY if args.tiny else ORDER)
    unknown = [n for n in names if n not in ALL]
    if unknown:
        print(f"error: unknown benchmark {unknown[0]!r}: choose from {', '.join(ALL)}", file=sys.stderr)
        return 2
    if args.dry_run and names != ["gpu"]:
        print(
            "error: --dry-run is for the GPU benchmark: use it with --only gpu (benchmarks/gpu.sh)",
            file=sys.stderr,
        )
        return 2
    work = args.work or (common.WORK / ("tiny" if args.tiny else "dry-run" if args.dry_run else ""))
    # a tiny or dry run never overwrites the real results: its default folder is under work/
    out = args.out or (work / "results" if args.tiny or args.dry_run else common.RESULTS)
    readme = args.readme or (common.README if out == common.RESULTS else out / "README.md")
    settings = common.Settings(
        tiny=args.tiny or args.dry_run, work=work, command=common.command_line(), dry_run=args.dry_run
    )
    if "gpu" in names and not args.dry_run and not common.gpu_names():
        print("error: no GPU is visible (nvidia-smi -L): run benchmarks/gpu.sh on a GPU machine, "
              "or add --dry-run to check it on the CPU", file=sys.stderr)  # fmt: skip
        return 2
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)

    failed = []
    t_all = time.perf_counter()
    for name in [n for n in ALL if n in names]:
        common.log(f"--- {name} ---")
        t0 = time.perf_counter()
        try:
            figures, extra = _runner(name)(settings, out)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        extra = {**extra, "seconds": round(time.perf_counter() - t0, 1)}
        path = common.write_result(out, name, figures, settings, extra)
        common.log(f"{name}: {len(figures)} figures in {extra['seconds']:.0f} s -> {path}")
    common.update_readme(readme, out)
    common.log(f"table -> {readme}; {time.perf_counter() - t_all:.0f} s in all")
    if failed:
        print(f"error: benchmark(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
