"""CLI commands for this stage (filled in by the stage's owner)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    return None
