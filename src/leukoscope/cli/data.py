"""`leukoscope data check` and `leukoscope data synth`.

Heavy modules (pandas, OpenCV, scikit-learn) are imported inside the commands so `leukoscope --help`
stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from leukoscope.cli._common import console, print_json
from leukoscope.data.remote import KAGGLE_SLUG

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

    from leukoscope.data.check import CheckReport

data_app = typer.Typer(help="Inspect datasets and write synthetic ones.", no_args_is_help=True)

_SHOWN_PER_KIND = 5


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


@data_app.command("check")
def check(
    path: Path = typer.Argument(..., help="A C-NMC folder, ALL-IDB2 folder, image folder or CSV manifest."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    strict: bool = typer.Option(False, "--strict", help="Exit 2 when any problem is found."),
    verify_checksums: bool = typer.Option(
        False, "--verify-checksums", help="C-NMC: compare each file's sha256 with the real dataset's."
    ),
) -> None:
    """Count images per split, class and subject; find bad files, duplicates and subject leaks."""
    from leukoscope.data.check import check_dataset

    report = _run_check(check_dataset, path, verify_checksums, show_progress=not as_json)
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report)
    if strict and report.problems:
        raise typer.Exit(2)


def _run_check(
    check_dataset: Callable[..., CheckReport], path: Path, verify: bool, show_progress: bool
) -> CheckReport:
    from rich.progress import Progress

    if not show_progress or not console.is_terminal:
        return check_dataset(path, verify_checksums=verify)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("decoding images", total=None)
        return check_dataset(
            path, verify_checksums=verify, progress=lambda i, n: bar.update(task, completed=i, total=n)
        )


def _print_report(report: CheckReport) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console(highlight=False)
    known = "known" if report.subject_known else "unknown: each image is its own subject"
    out.print(f"[bold]{report.path}[/]  layout: [cyan]{report.layout}[/]")
    out.print(
        f"{report.n_images} images ({report.n_readable} readable), {len(report.classes)} classes, "
        f"{report.subjects} subjects ({known})"
    )
    splits = Table("split", "images", "classes", "subjects", title="splits", title_justify="left")
    for name, s in report.splits.items():
        classes = ", ".join(f"{k} {v}" for k, v in s["classes"].items()) or "unlabelled"
        splits.add_row(name, str(s["n_images"]), classes, str(s["subjects"]) if s["subject_known"] else "-")
    out.print(splits)
    out.print("sizes: " + ", ".join(f"{k} x{v}" for k, v in report.sizes.items()))
    _print_problems(out, report)
    if report.differences is not None:
        _print_differences(out, report.differences)
    for note in report.notes:
        out.print(f"[dim]note: {note}[/]")


def _print_problems(out: Console, report: CheckReport) -> None:
    from rich.table import Table

    if not report.problems:
        out.print("[green]no problems found[/]")
        return
    table = Table("problem", "count", "examples", title="problems", title_justify="left")
    by_kind: dict[str, list[dict[str, str]]] = {}
    for p in report.problems:
        by_kind.setdefault(p["kind"], []).append(p)
    for kind, items in sorted(by_kind.items()):
        shown = "\n".join(f"{p['path']}: {p['message']}" for p in items[:_SHOWN_PER_KIND])
        table.add_row(f"[red]{kind}[/]", str(len(items)), shown)
    out.print(table)


def _print_differences(out: Console, diff: dict) -> None:
    from rich.table import Table

    verdict = "[green]matches[/]" if diff["matches_known"] else "[yellow]differs from[/]"
    out.print(f"this copy {verdict} the known C-NMC 2019 dataset (informational, not a problem)")
    table = Table("part", "expected", "found", "expected bytes", "found bytes", title_justify="left")
    for part, row in diff["parts"].items():
        table.add_row(
            part,
            str(row["expected"]),
            str(row["found"]),
            _sizes(row["expected_bytes"]),
            _sizes(row["found_bytes"]),
        )
    out.print(table)
    out.print(
        f"files missing {diff['missing_files']}, extra {diff['extra_files']}, "
        f"of another size {diff['size_mismatches']}"
    )
    if "checksums" in diff:
        c = diff["checksums"]
        out.print(f"sha256: {c['checked']} checked, {c['mismatched']} differ")


def _sizes(sizes: dict[str, int]) -> str:
    return ", ".join(f"{int(k):,}" + (f" x{v}" if len(sizes) > 1 else "") for k, v in sizes.items()) or "-"


@data_app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to create (must not exist or be empty)."),
    subjects: int = typer.Option(12, "--subjects", help="Training subjects (about 2 ALL : 1 HEM), >= 3."),
    cells_per_subject: int = typer.Option(30, "--cells-per-subject", help="Images per training subject."),
    size: int = typer.Option(450, "--size", help="Image side in pixels (C-NMC: 450)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, byte-identical files."),
    difficulty: float = typer.Option(0.5, "--difficulty", help="0 separable .. 1 classes identical."),
    prelim: int = typer.Option(0, "--prelim", help="Labelled preliminary-test images (new subjects)."),
    final: int = typer.Option(0, "--final", help="Unlabelled final-test images (600x600 at --size 450)."),
) -> None:
    """Write a synthetic dataset in C-NMC 2019's exact layout and naming."""
    from leukoscope.data.synth import write_cnmc_synth

    with console.status(f"drawing cells into {out}"):
        summary = write_cnmc_synth(
            out,
            subjects=subjects,
            cells_per_subject=cells_per_subject,
            size=size,
            seed=seed,
            difficulty=difficulty,
            prelim=prelim,
            final=final,
        )
    folds = ", ".join(f"{k}: {v['all']} all / {v['hem']} hem" for k, v in summary["training"].items())
    console.print(f"wrote {summary['n_images']} images to {summary['path']} ({folds})")


@data_app.command("fetch")
def fetch(
    out: Path = typer.Option(..., "--out", help="Folder the dataset goes to (or is in, for --source local)."),
    source: str = typer.Option("kaggle", "--source", help="kaggle | url | local (synthetic: `data synth`)."),
    url: str = typer.Option("", "--url", help="--source url: the zip's URL."),
    sha256: str = typer.Option("", "--sha256", help="--source url: the zip's sha256 (required)."),
    kaggle: str = typer.Option(
        KAGGLE_SLUG, "--kaggle", help="Kaggle dataset slug (C-NMC 2019's by default)."
    ),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Every file's sha256 against C-NMC 2019."),
    record: Path | None = typer.Option(None, "--record", help="Also write the JSON record to this file."),
    as_json: bool = typer.Option(False, "--json", help="Print the record as one JSON object on stdout."),
) -> None:
    """Download C-NMC 2019 (Kaggle or a zip URL) or check a local copy; nothing half-done is left behind."""
    from leukoscope.data.download import DatasetConfig
    from leukoscope.data.download import fetch as fetch_dataset

    request = DatasetConfig(
        source=source, path=str(out), url=url, sha256=sha256, kaggle=kaggle, verify=verify
    )
    with console.status(f"fetching into {out}"):
        result = fetch_dataset(request, record_out=record)
    if as_json:
        print_json(result)
    else:
        checked = result["verification"]
        state = "verified" if checked.get("verified") else f"not verified ({checked.get('skipped', 'no')})"
        console.print(f"{result['path']}: {result['files']} files, {result['bytes']:,} bytes, {state}")
