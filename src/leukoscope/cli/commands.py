"""Wires each stage's commands into the top-level app."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from leukoscope.cli import data, demo, evaluate, experiments, infer, models, serve, train, workflow

    for module in (data, models, train, evaluate, experiments, infer, serve, demo, workflow):
        module.register(app)
