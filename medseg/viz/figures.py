"""Figure plumbing shared by the plots: Agg figures without pyplot, atomic saving, PNG bytes.

Using ``Figure`` + ``FigureCanvasAgg`` directly keeps plotting thread-safe and leak-free.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from medseg.atomic import atomic_path

__all__ = ["new_figure", "save_figure", "figure_to_png_bytes", "label_colors", "resolve_window",
           "WINDOWS_HU"]

#: Display windows (low, high) in HU for CT, by name.
WINDOWS_HU = {
    "abdomen": (-160.0, 240.0),
    "lung": (-1350.0, 150.0),
    "bone": (-450.0, 1050.0),
    "brain": (0.0, 80.0),
    "mediastinum": (-125.0, 225.0),
}

# Colour per label value: the first ten follow matplotlib's tab10, then tab20b/tab20c.
_BASE_COLORS = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]


def new_figure(figsize: Sequence[float]) -> Figure:
    """A matplotlib Figure with an Agg canvas attached (no pyplot, no global state).

    >>> fig = new_figure((2.0, 1.0))
    >>> fig.get_size_inches().tolist()
    [2.0, 1.0]
    """
    fig = Figure(figsize=tuple(float(s) for s in figsize))
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, *, dpi: float = 100.0) -> Path:
    """Write ``fig`` atomically; the format follows the extension (.png, .svg, .pdf).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to save (any of the ``medseg.viz`` results).
    path : str or Path
        Output file; its parent folders are created.
    dpi : float
        Pixels per inch for raster formats: a PNG is ``figsize * dpi`` pixels.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "empty.png"
    >>> save_figure(new_figure((2, 1)), out, dpi=50).stat().st_size > 0
    True
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt)
    return path


def figure_to_png_bytes(fig: Figure, *, dpi: float = 100.0) -> bytes:
    """Render ``fig`` to PNG bytes (for embedding in HTML reports).

    >>> figure_to_png_bytes(new_figure((1, 1)), dpi=10)[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    return buffer.getvalue()


def label_colors(values: Sequence[int]) -> dict[int, tuple[float, float, float]]:
    """A fixed RGB colour (0..1) for each label value, the same in every figure.

    >>> label_colors([1, 2])[1]
    (0.12156862745098039, 0.4666666666666667, 0.7058823529411765)
    """
    import matplotlib as mpl

    extra = [mpl.colors.to_hex(c) for c in mpl.colormaps["tab20b"].colors]
    extra += [mpl.colors.to_hex(c) for c in mpl.colormaps["tab20c"].colors]
    palette = _BASE_COLORS + extra
    return {int(v): mpl.colors.to_rgb(palette[(int(v) - 1) % len(palette)]) for v in values}


def resolve_window(array: np.ndarray, window: str | Sequence[float] | None) -> tuple[float, float]:
    """Display range ``(low, high)`` from a preset name, explicit values or the data.

    ``None`` picks the abdomen CT window when the data look like CT in HU
    (minimum at or below -500), else the 1st-99th percentile range.

    >>> resolve_window(np.array([-1000.0, 50.0]), None)
    (-160.0, 240.0)
    >>> resolve_window(np.arange(101.0), None)
    (1.0, 99.0)
    >>> resolve_window(np.zeros(3), "lung")
    (-1350.0, 150.0)
    """
    if isinstance(window, str):
        if window not in WINDOWS_HU:
            raise ValueError(f"unknown window {window!r}; use one of {sorted(WINDOWS_HU)} or (low, high)")
        return WINDOWS_HU[window]
    if window is not None:
        low, high = (float(v) for v in window)
        return low, high
    finite = np.asarray(array)[np.isfinite(array)]
    if finite.size == 0:
        return 0.0, 1.0
    if finite.min() <= -500.0 and finite.max() > 0.0:
        return WINDOWS_HU["abdomen"]
    low, high = (float(v) for v in np.percentile(finite, [1.0, 99.0]))
    if high <= low:
        high = low + 1.0
    return low, high
