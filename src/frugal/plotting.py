"""Figures written to files: a matplotlib figure drawn off-screen (Agg), laid out, saved and
closed in one place, so no report leaves figures open or needs a display."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def saved_figure(path: str | Path, *grid: int, dpi: int = 110, **subplots: Any) -> Iterator[tuple]:
    """(figure, axes) from `plt.subplots(*grid, **subplots)`; on leaving the block the
    figure is laid out and written to `path` (folders made). It is closed either way; when
    drawing raised, nothing is written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(*grid, **subplots)
    try:
        yield fig, axes
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)


__all__ = ["saved_figure"]
