"""Bring a GPU machine's `gpu.json` home: `python benchmarks/gpu_import.py PATH [--results DIR] [--readme F]`.

`benchmarks/gpu.sh --out DIR` on the GPU machine writes DIR/gpu.json (figures, machine, the raw result).
This copies it to `benchmarks/results/gpu.json`, regenerates the table in `benchmarks/README.md` from all
results, and prints the short table the top-level README's Speed section quotes (per configuration:
train and predict images/s, first step; the sharing runs). PATH is the file or the folder holding it.
Where the run stopped before writing gpu.json, PATH may be its raw `result.json` (saved after every
item, in `<work>/runs/gpu/`): the figures are then made here, and the machine is what the result names.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "src") not in sys.path:
    sys.path.insert(1, str(REPO / "src"))

from benchmarks import common  # noqa: E402


def _num(value: float | None, unit: str = "") -> str:
    return "–" if value is None else f"{value:,.0f}{unit}"


def summary_table(res: dict[str, Any]) -> str:
    """The README's GPU table from a gpu.json's `result`: one row per configuration, then the sharing."""
    items = {r["name"]: r for r in res["items"]}

    def rate(name: str) -> float | None:
        item = items.get(name)
        return item.get("aggregate_images_per_s") if item and item["status"] == "ok" else None

    lines = [
        "| model | precision | train img/s | predict img/s (batch "
        f"{res['predict_batch']}) | first step (compile) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for name, proc_name in (("dn_fp32", "dn_fp32"), ("b2_fp32", "b2_fp32_a"), ("b2_bf16", "b2_bf16")):
        proc = res["processes"].get(proc_name, {})
        if not proc:
            continue
        first = proc.get("first_step_s")
        lines.append(
            f"| {proc['backbone']} @{proc['size']} | {proc['policy']} | {_num(rate(name))} | "
            f"{_num(rate(name + '_predict'))} | {_num(first, ' s')} |"
        )
    alone, b2 = rate("b2_fp32"), res["processes"].get("b2_fp32_a", {})
    for n in (2, 3):
        item = items.get(f"share{n}")
        if not item or item["status"] != "ok" or not alone:
            continue
        each = " + ".join(_num(j.get("images_per_s")) for j in item["jobs"].values())
        together = item["aggregate_images_per_s"]
        lines.append(
            f"| {n} x {b2.get('backbone')} @{b2.get('size')} sharing the GPU | float32 | {each} = "
            f"{_num(together)} ({together / alone:.2f}x one job) | – | – |"
        )
    notes = [f"{r['name']}: {r['status']} ({r.get('reason', '')})" for r in res["items"] if r["status"]
             not in ("ok", "unneeded")]  # fmt: skip
    busy = [f"{r['name']} (while {', '.join(r['others_busy'])} compiled)" for r in res["items"]
            if r["status"] == "ok" and r.get("others_busy")]  # fmt: skip
    text = "\n".join(lines) + "\n"
    if busy:
        text += "\nMeasured while other processes still compiled: " + "; ".join(busy) + "\n"
    if notes:
        text += "\nNot measured: " + "; ".join(notes) + "\n"
    return text


def doc_from_raw(res: dict[str, Any], path: Path) -> dict[str, Any]:
    """A gpu.json from a raw result: its figures made here; the machine as far as the result knows it."""
    from benchmarks import gpu_figures as G

    res = dict(res)
    res.setdefault("input_projection", G.input_projection(res))
    figures = (
        G.train_figures(res, {}) + G.pipeline_figures(res, {}) + G.projection_figures(res, res["dry_run"])
    )
    keras = next((p.get("keras") for p in res["processes"].values() if p.get("keras")), None)
    return {
        "benchmark": "gpu",
        "command": f"benchmarks/gpu.sh (figures made by gpu_import.py from {path.name})",
        "date": common.now_iso(),
        "machine": {"gpu": ", ".join(res["gpus"]) or "none", "keras": keras, "keras_backend": res["backend"],
                    "cpu": "?", "cores": "?", "isa": []},
        "tiny": res["dry_run"],
        "dry_run": res["dry_run"],
        "figures": [f.to_dict() for f in figures],
        "result": res,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", type=Path, help="gpu.json, or the folder holding it")
    parser.add_argument("--results", type=Path, default=common.RESULTS, help="default benchmarks/results")
    parser.add_argument("--readme", type=Path, default=common.README, help="default benchmarks/README.md")
    parser.add_argument("--allow-dry-run", action="store_true", help="accept a --dry-run result (tests)")
    args = parser.parse_args(argv)
    path = args.path / "gpu.json" if args.path.is_dir() else args.path
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    if "items" in doc and "processes" in doc:  # the raw result.json of a run that stopped early
        doc = doc_from_raw(doc, path)
    if doc.get("benchmark") != "gpu" or "result" not in doc:
        print(f"error: {path} is not a result of benchmarks/gpu.sh", file=sys.stderr)
        return 2
    if doc.get("dry_run") and not args.allow_dry_run:
        print(f"error: {path} is a --dry-run result (CPU, tiny sizes): nothing to publish", file=sys.stderr)
        return 2
    from leukoscope._io import write_json

    target = write_json(Path(args.results) / "gpu.json", doc)
    common.update_readme(args.readme, args.results)
    print(f"{target}; table regenerated in {args.readme}\n")
    print(summary_table(doc["result"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
