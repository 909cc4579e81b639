"""`make bench`: run the benchmarks, write `results/<name>.json`, regenerate the README table from them.

    .venv/bin/python benchmarks/run.py                      # everything (~30 min on a 2-core CPU)
    .venv/bin/python benchmarks/run.py --only train,infer   # some
    .venv/bin/python benchmarks/run.py --tiny --out /tmp/b  # seconds: proves every benchmark works
    .venv/bin/python benchmarks/run.py --only data --scale 0.1   # 10% of C-NMC's 10,661 images

Synthetic C-NMC images are generated once into `benchmarks/work/` (git-ignored) and reused.
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
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TIMM_HUB_OFFLINE", "1")

from benchmarks import common  # noqa: E402

ORDER = ("train", "infer", "ceiling", "data", "scale")  # ceiling reads train/infer figures of this run


def _module(name: str):  # type: ignore[no-untyped-def]
    import importlib

    return importlib.import_module(f"benchmarks.bench_{name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(ORDER)}")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: proves each benchmark runs (tests)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the 10,661 images (data)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    parser.add_argument(
        "--work", type=Path, default=None, help="generated data and runs (default benchmarks/work)"
    )
    parser.add_argument("--readme", type=Path, default=None, help="README whose table to regenerate")
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(ORDER)
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        print(f"error: unknown benchmark {unknown[0]!r}: choose from {', '.join(ORDER)}", file=sys.stderr)
        return 2
    if not 0 < args.scale <= 1:
        print(f"error: --scale is {args.scale}: use a fraction in (0, 1]", file=sys.stderr)
        return 2
    out = args.out or common.RESULTS
    default_out = args.out is None
    work = args.work or (common.WORK / "tiny" if args.tiny else common.WORK)
    readme = args.readme or (common.README if default_out else out / "README.md")
    settings = common.Settings(tiny=args.tiny, scale=args.scale, work=work, command=common.command_line())
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)

    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    failed = []
    for name in [n for n in ORDER if n in names]:
        common.log(f"--- {name} ---")
        t0 = time.perf_counter()
        try:
            figures, extra = _module(name).run(settings, out)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        extra = {"seconds": round(time.perf_counter() - t0, 1), **extra}
        path = common.write_result(out, name, figures, settings, extra)
        common.log(f"{name}: {len(figures)} figures in {extra['seconds']:.0f} s -> {path}")
    common.update_readme(readme, out)
    common.log(f"table -> {readme}")
    if failed:
        print(f"error: benchmark(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
