"""Anomaly/probability heatmaps over an image in three planes, with optional reference contours.

Used for anomaly maps and lesion probability maps (``medseg.anomaly``).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from medseg.errors import VisualizationError
from medseg.viz.figures import new_figure, resolve_window
from medseg.viz.slices import _FIXED_AXIS, PLANES, _as_ras, _edge_marks, _on_grid, plane_image
from medseg.volume import Volume

__all__ = ["show_anomaly_map"]


def _heat_rgba(values: np.ndarray, cmap, norm, *, alpha: float, threshold: float | None
               ) -> np.ndarray:
    """Colour-mapped scores whose opacity grows with the score (low scores stay transparent)."""
    scaled = np.clip(np.nan_to_num(np.ma.filled(norm(values), 0.0), nan=0.0), 0.0, 1.0)
    rgba = np.asarray(cmap(scaled), dtype=np.float32)
    opacity = alpha * scaled
    opacity[~np.isfinite(values)] = 0.0
    if threshold is not None:
        opacity[values < threshold] = 0.0
    rgba[..., 3] = opacity
    return rgba


def show_anomaly_map(
    image: Volume,
    score: Volume,
    *,
    reference: Volume | None = None,
    threshold: float | None = None,
    score_range: Sequence[float] | None = None,
    centre_mm: Sequence[float] | None = None,
    window: str | Sequence[float] | None = None,
    cmap: str = "inferno",
    alpha: float = 0.6,
    panel_inches: float = 3.0,
) -> Figure:
    """Heatmap of a voxel score over the image in axial, coronal and sagittal planes.

    Planes follow the radiological convention of :func:`medseg.viz.show_slices`
    and cross at the highest score unless ``centre_mm`` is given.

    Parameters
    ----------
    image : Volume
        The scan.
    score : Volume
        Anomaly score or probability per voxel (3D, or 4D with one channel),
        on the image grid or resampled onto it (linear).
    reference : Volume, optional
        Reference lesion mask, drawn as cyan contours.
    threshold : float, optional
        Scores below it are fully transparent. Otherwise opacity grows with
        the score, so low scores barely tint the image.
    score_range : (low, high), optional
        Colour scale limits (default: 1st-99.9th percentile of the score).
    centre_mm, window
        As in :func:`medseg.viz.show_slices`.
    cmap, alpha
        Colour map and opacity of the heatmap.

    Returns
    -------
    matplotlib.figure.Figure
        One row of three planes and a colour bar.

    Examples
    --------
    >>> from medseg.demo import make_phantom
    >>> case = make_phantom(shape=(24, 24, 16), n_lesions=1, seed=3)
    >>> fig = show_anomaly_map(case.image, case.lesions.replace(kind="image"), reference=case.lesions)
    >>> len(fig.axes)  # three planes and the colour bar
    4
    """
    base = _as_ras(image, what="image")
    heat = _as_ras(score, what="score").replace(kind="image")
    if not heat.same_grid(base):
        heat = heat.resample_like(base, order=1)
    values = heat.array.astype(np.float32)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise VisualizationError(f"{score.source}: the score map has no finite values to draw")
    low, high = (np.percentile(finite, [1.0, 99.9]) if score_range is None
                 else [float(v) for v in score_range])
    if high <= low:
        high = low + 1e-6
    mask = _on_grid(reference, base, what="reference")
    if centre_mm is None:
        index = np.array(np.unravel_index(int(np.nanargmax(values)), values.shape))
    else:
        index = np.round(base.ras_mm_to_index(np.asarray(centre_mm, float)[None])[0]).astype(int)
        index = np.clip(index, 0, np.asarray(base.shape) - 1)
    win = resolve_window(base.array, window)
    spacing = base.spacing_mm
    widths = [base.shape[0] * spacing[0], base.shape[0] * spacing[0], base.shape[1] * spacing[1]]
    heights = [base.shape[1] * spacing[1], base.shape[2] * spacing[2], base.shape[2] * spacing[2]]
    fig = new_figure((sum(panel_inches * w / max(heights) for w in widths) + 1.2, panel_inches + 0.5))
    grid = fig.add_gridspec(1, 4, width_ratios=[*widths, 0.04 * sum(widths)], left=0.02,
                            right=0.93, bottom=0.04, top=0.88, wspace=0.05)
    cmap_obj = mpl.colormaps[cmap]
    norm = mpl.colors.Normalize(vmin=float(low), vmax=float(high))
    for col, plane in enumerate(PLANES):
        fixed = _FIXED_AXIS[plane]
        view, size_mm = plane_image(base.array, plane, index[fixed], spacing)
        heat_view = plane_image(values, plane, index[fixed], spacing)[0]
        rows, cols = view.shape
        extent = (0.0, cols * size_mm[1], rows * size_mm[0], 0.0)
        ax = fig.add_subplot(grid[0, col])
        ax.imshow(view, cmap="gray", vmin=win[0], vmax=win[1], extent=extent,
                  interpolation="nearest")
        ax.imshow(_heat_rgba(heat_view, cmap_obj, norm, alpha=alpha, threshold=threshold),
                  extent=extent, interpolation="nearest")
        if mask is not None:
            outline = plane_image(mask.array, plane, index[fixed], spacing)[0] > 0
            if outline.any() and not outline.all():
                y = (np.arange(rows) + 0.5) * size_mm[0]
                x = (np.arange(cols) + 0.5) * size_mm[1]
                ax.contour(x, y, outline.astype(float), levels=[0.5], colors="cyan",
                           linewidths=1.0)
        ax.set_aspect("equal")
        ax.set_xlim(0.0, extent[1])
        ax.set_ylim(extent[2], 0.0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{plane} ({'ijk'[fixed]}={index[fixed]})", fontsize=9)
        _edge_marks(ax, plane)
    mappable = mpl.cm.ScalarMappable(norm=norm, cmap=cmap_obj)
    fig.colorbar(mappable, cax=fig.add_subplot(grid[0, 3]), label="score")
    return fig
