"""One way to make and save a matplotlib figure, for every PNG the package writes (evaluation plots,
report figures, a run's training curves).

matplotlib's object API on the Agg canvas: no pyplot global state, no display and nothing to close, so
drawing is safe in worker processes, threads and servers; files are written atomically (`leukoscope._io`).
matplotlib is imported only when a figure is made, so importing a module that can plot stays cheap.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from leukoscope._io import atomic_path

DPI = 110


def new_figure(
    width: float, height: float, rows: int = 1, cols: int = 1, *, layout: str = "constrained", **subplots: Any
) -> tuple[Any, Any]:
    """A `width` x `height` inch figure at DPI and its axes; `subplots` goes to `Figure.subplots`
    (squeeze, sharex, gridspec_kw, ...)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    return fig, fig.subplots(rows, cols, **subplots)


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes (for a report that inlines it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def save_png(fig: Any, path: str | Path) -> Path:
    """Write the figure to `path` as PNG, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    path = Path(path)
    with atomic_path(path, keep_suffix=True) as tmp:
        fig.savefig(tmp, format="png")
    return path
