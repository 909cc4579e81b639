"""LeukoScope: tell leukemic blasts (ALL) from normal cells (HEM) in single-cell microscope images."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("leukoscope")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
