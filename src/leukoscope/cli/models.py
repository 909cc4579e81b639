"""`leukoscope backbones`: every name `--backbone` takes, with its ImageNet size and input convention."""

from __future__ import annotations

import typer

from leukoscope.cli._common import print_json


def backbones(as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout.")) -> None:
    """List the backbones (every keras.applications model, and simplecnn for smoke runs)."""
    from rich.console import Console
    from rich.table import Table

    from leukoscope.models.backbones import BACKBONES

    specs = [BACKBONES.get(name) for name in BACKBONES]
    if as_json:
        print_json(
            {
                s.name: {
                    "label": s.label,
                    "size": s.default_size,
                    "input": s.input_mode,
                    "imagenet": s.imagenet,
                }
                for s in specs
            }
        )
        return
    table = Table("name", "Keras", "ImageNet size", "input convention", "ImageNet weights")
    for s in specs:
        table.add_row(s.name, s.label, str(s.default_size), s.input_mode, "yes" if s.imagenet else "no")
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("backbones")(backbones)
