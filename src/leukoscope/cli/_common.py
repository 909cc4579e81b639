"""Shared CLI plumbing: consoles, the --debug switch, and config assembly from --config + flags."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from leukoscope.config import RunConfig

console = Console(stderr=True, highlight=False)
STATE = {"debug": False}


def print_json(obj: Any) -> None:
    """One JSON object on stdout (progress and logs go to stderr, so stdout stays parseable)."""
    from leukoscope._io import _json_default

    sys.stdout.write(json.dumps(obj, default=_json_default) + "\n")
    sys.stdout.flush()


def configure_logging(debug: bool = False) -> None:
    """LeukoScope's own progress lines (resumes, devices, early stopping) on stderr; others stay quiet."""
    logger = logging.getLogger("leukoscope")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False


def build_config(config: Path | None, overrides: dict[str, Any]) -> RunConfig:
    base = RunConfig.from_yaml(config) if config else RunConfig()
    return base.override(overrides)
