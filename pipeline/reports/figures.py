"""The shared plumbing of the report figures: a headless figure, an atomic PNG write, the reports folder."""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

import data_manifests as dm

REPORTS = "reports"  # ROOT/reports/, beside manifests/
DPI = 100
KEPT, REJECTED, FAILED, BAND = "#2e8b57", "#c0392b", "#7f8c8d", "#f1c40f"


def reports_dir(root: str | Path) -> Path:
    """``ROOT/reports`` (not created)."""
    return Path(root) / REPORTS


def new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas, ``width`` x ``height`` inches; no pyplot, no global state."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | Path, palette: bool = False) -> Path:
    """Write ``fig`` to ``path`` as PNG atomically (readers see the old file or the new one); returns the path.

    ``palette``: store 256 colours instead of RGBA — a quarter to a third of the bytes for figures full of photos
    (noisy toy backgrounds compress badly), no visible loss at thumbnail size."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    if palette:
        with Image.open(io.BytesIO(buffer.getvalue())) as im:
            small = im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        buffer = io.BytesIO()
        small.save(buffer, "PNG", optimize=True)
    dm.atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)
