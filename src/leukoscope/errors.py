"""User-facing errors: the CLI turns these into one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

from pathlib import Path


class LeukoScopeError(Exception):
    """Something the user can fix: bad input, a missing file, an impossible option.

    The message says what went wrong, which file, and what to do.
    """

    def __init__(self, what: str, *, path: str | Path | None = None, hint: str | None = None) -> None:
        self.what = what
        self.path = None if path is None else str(path)
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [self.what]
        if self.path:
            parts.append(f"({self.path})")
        line = " ".join(parts)
        if self.hint:
            line += f": {self.hint}"
        return line


class DataError(LeukoScopeError):
    """A dataset is missing, unreadable, mislabelled or leaks between splits."""


class ConfigError(LeukoScopeError):
    """A configuration value or combination of options is invalid."""


class ModelError(LeukoScopeError):
    """A model, its weights or a checkpoint cannot be created or loaded."""
