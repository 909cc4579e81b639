"""Entry point: sub-command groups, --version, and the one-line error contract (exit 2, no traceback)."""

from __future__ import annotations

import os
import sys

import typer

from leukoscope import __version__
from leukoscope.cli import _common
from leukoscope.cli._common import console
from leukoscope.errors import LeukoScopeError

app = typer.Typer(
    name="leukoscope",
    help="Tell leukemic blasts (ALL) from normal cells (HEM) in single-cell microscope images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"leukoscope {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
) -> None:
    _common.STATE["debug"] = debug
    _common.configure_logging(debug)


def _register() -> None:
    """Each stage adds its commands here; imports stay light so `--help` is instant."""
    from leukoscope.cli import commands

    commands.register(app)


_register()


def run() -> None:
    debug = "--debug" in sys.argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if debug else "2")  # TF's C++ start-up chatter
    try:
        # standalone_mode=False makes click *return* the code of `raise typer.Exit(n)` instead of
        # exiting with it: without passing it on, `data check --strict` exited 0 through the console script
        code = app(standalone_mode=False)
    except LeukoScopeError as exc:
        if debug:
            raise
        console.print(f"[bold red]error:[/] {exc.one_line()}", soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted: finished outputs and checkpoints were kept")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click's usage errors and anything unexpected
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if debug:
            raise
        console.print(
            f"[bold red]error:[/] {type(exc).__name__}: {exc} (run again with --debug for the traceback)",
            soft_wrap=True,
        )
        sys.exit(1)
    if isinstance(code, int) and code != 0:
        sys.exit(code)
