"""Shared CLI plumbing: the console, JSON on stdout, the --debug switch and logging."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from rich.console import Console

console = Console(stderr=True, highlight=False)
STATE = {"debug": False}


def print_json(obj: Any) -> None:
    """One JSON object on stdout (progress and logs go to stderr, so stdout stays parseable)."""
    from leukoscope._io import _json_default

    sys.stdout.write(json.dumps(obj, default=_json_default) + "\n")
    sys.stdout.flush()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to `sys.stderr` as it is when a line is logged, not as it was when the CLI first ran: a
    command run again in one process (tests, an embedding app) may have swapped and closed the old one."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(debug: bool = False) -> None:
    """LeukoScope's own progress lines (resumes, devices, early stopping) on stderr; others stay quiet."""
    logger = logging.getLogger("leukoscope")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False
