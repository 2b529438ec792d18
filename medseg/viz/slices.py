"""Three-plane and montage views of Volumes with label overlays, in millimetre proportions.

Planes are cut from the RAS-reoriented array and shown in radiological convention.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from medseg.errors import VisualizationError
from medseg.viz.figures import label_colors, new_figure, resolve_window
from medseg.volume import Volume

__all__ = ["PLANES", "plane_image", "show_slices", "montage", "slice_indices_at"]

log = logging.getLogger(__name__)

PLANES = ("axial", "coronal", "sagittal")
# For each plane: the RAS array axis held fixed, and the (row, column) axes shown.
_FIXED_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}
_SHOWN_AXES = {"axial": (1, 0), "coronal": (2, 0), "sagittal": (2, 1)}
# Anatomical direction at the (left, right, top, bottom) edge of each view.
_EDGES = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "S", "I"),
          "sagittal": ("A", "P", "S", "I")}


def _as_ras(volume: Volume, *, what: str, channel: int = 0) -> Volume:
    if not isinstance(volume, Volume):
        raise VisualizationError(
            f"{what}: expected a medseg.Volume, got {type(volume).__name__}; "
            "wrap arrays with medseg.Volume.from_array(array, spacing_mm=...)"
        )
    ras = volume.reorient("RAS")
    if ras.array.ndim == 4:
        if not 0 <= channel < ras.array.shape[3]:
            raise VisualizationError(
                f"{volume.source}: channel {channel} requested but {what} has "
                f"{ras.array.shape[3]} channel(s); pass channel= between 0 and {ras.array.shape[3] - 1}"
            )
        ras = ras.with_array(ras.array[..., channel])
    return ras


def _on_grid(overlay: Volume | None, image: Volume, *, what: str) -> Volume | None:
    """Overlay reoriented to RAS and, if needed, resampled (nearest) onto the image grid."""
    if overlay is None:
        return None
    ras = _as_ras(overlay, what=what)
    if not ras.same_grid(image):
        log.info("%s: resampling %s onto the image grid for display", overlay.source, what)
        ras = ras.resample_like(image, order=0)
    return ras


def plane_image(array: np.ndarray, plane: str, index: int, spacing_mm: Sequence[float]
                ) -> tuple[np.ndarray, tuple[float, float]]:
    """Cut one plane from a RAS-ordered array, flipped for radiological display.

    Parameters
    ----------
    array : numpy.ndarray
        3D array indexed ``[i, j, k]`` with i -> Right, j -> Anterior, k -> Superior
        (``Volume.reorient("RAS").array``).
    plane : {"axial", "coronal", "sagittal"}
        Which plane; ``index`` is the slice along the fixed axis (k, j or i).
    spacing_mm : sequence of 3 floats
        Voxel size along i, j, k.

    Returns
    -------
    (numpy.ndarray, (float, float))
        The 2D display array (row 0 at the top of the screen) and the
        (row, column) pixel size in mm. Axial and coronal views put the
        patient's right on the viewer's left; axial has anterior at the top,
        coronal and sagittal have superior at the top, sagittal has anterior
        on the left.

    Examples
    --------
    >>> arr = np.zeros((2, 3, 4)); arr[1, 2, 0] = 1  # right-most, anterior-most, inferior
    >>> view, size = plane_image(arr, "axial", 0, (1.0, 2.0, 3.0))
    >>> view.shape, size, np.argwhere(view).tolist()
    ((3, 2), (2.0, 1.0), [[0, 0]])
    """
    if plane not in PLANES:
        raise VisualizationError(f"unknown plane {plane!r}; use one of {PLANES}")
    section = np.take(array, int(index), axis=_FIXED_AXIS[plane])
    row_axis, col_axis = _SHOWN_AXES[plane]
    # ``section`` keeps the two remaining axes in increasing order (col_axis < row_axis),
    # so the transpose puts rows first; the flips put high R/A/S values top/left.
    view = section.T[::-1, ::-1]
    return view, (float(spacing_mm[row_axis]), float(spacing_mm[col_axis]))


def _default_centre_index(image: Volume, overlays: Sequence[Volume | None]) -> np.ndarray:
    for overlay in overlays:
        if overlay is not None and np.any(overlay.array > 0):
            return np.round(np.argwhere(overlay.array > 0).mean(axis=0)).astype(int)
    return (np.asarray(image.shape) - 1) // 2


def slice_indices_at(image: Volume, centre_mm: Sequence[float] | None,
                     overlays: Sequence[Volume | None] = ()) -> np.ndarray:
    """RAS voxel indices (i, j, k) of the point where the three planes cross.

    ``centre_mm`` is a RAS point in millimetres; ``None`` uses the centre of
    the first non-empty overlay, else the middle of the volume. Indices are
    clipped to the volume.
    """
    if centre_mm is None:
        index = _default_centre_index(image, overlays)
    else:
        index = np.round(image.ras_mm_to_index(np.asarray(centre_mm, float)[None])[0]).astype(int)
    return np.clip(index, 0, np.asarray(image.shape) - 1)


def _overlay_rgba(view: np.ndarray, colors: Mapping[int, tuple], alpha: float) -> np.ndarray:
    rgba = np.zeros(view.shape + (4,), dtype=np.float32)
    for value, rgb in colors.items():
        hit = view == value
        if hit.any():
            rgba[hit, :3] = rgb
            rgba[hit, 3] = alpha
    return rgba


def _draw_plane(ax, image: np.ndarray, overlay: np.ndarray | None, size_mm: tuple[float, float],
                *, window: tuple[float, float], colors: Mapping[int, tuple], alpha: float) -> None:
    rows, cols = image.shape
    extent = (0.0, cols * size_mm[1], rows * size_mm[0], 0.0)
    ax.imshow(image, cmap="gray", vmin=window[0], vmax=window[1], extent=extent,
              interpolation="nearest")
    if overlay is not None:
        ax.imshow(_overlay_rgba(overlay, colors, alpha), extent=extent, interpolation="nearest")
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _edge_marks(ax, plane: str) -> None:
    left, right, top, bottom = _EDGES[plane]
    style = {"transform": ax.transAxes, "color": "yellow", "fontsize": 8, "fontweight": "bold"}
    ax.text(0.02, 0.5, left, ha="left", va="center", **style)
    ax.text(0.98, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.98, top, ha="center", va="top", **style)
    ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)


def _label_names(*volumes: Volume | None) -> dict[int, str]:
    """Names of the label values present, from the first volume that names each one."""
    present = [v for v in volumes if v is not None]
    values = sorted({int(x) for v in present for x in np.unique(v.array) if x > 0})
    names = {}
    for value in values:
        named = [v.labels[value] for v in present if value in v.labels]
        names[value] = named[0] if named else f"label {value}"
    return names


def _legend_layout(names: Mapping[int, str], width_in: float) -> tuple[int, float]:
    """Columns of the legend and the height (inches) it needs below the panels."""
    if not names:
        return 1, 0.1
    # About 0.075 in per character at 8 pt, plus the colour patch and spacing.
    entry_in = 0.075 * max(len(f"{v}: {n}") for v, n in names.items()) + 0.55
    ncol = int(max(1, min(len(names), width_in // entry_in)))
    rows = int(np.ceil(len(names) / ncol))
    return ncol, 0.2 + 0.2 * rows


def _add_legend(fig: Figure, names: Mapping[int, str], colors: Mapping[int, tuple],
                ncol: int) -> None:
    if not names:
        return
    handles = [Patch(facecolor=colors[v], label=f"{v}: {n}") for v, n in names.items()]
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=8, frameon=False)


def show_slices(
    volume: Volume,
    labels: Volume | None = None,
    *,
    prediction: Volume | None = None,
    centre_mm: Sequence[float] | None = None,
    window: str | Sequence[float] | None = None,
    alpha: float = 0.4,
    channel: int = 0,
    title: str | None = None,
    panel_inches: float = 3.0,
) -> Figure:
    """Axial, coronal and sagittal slices of an image, with label overlays and a legend.

    The volume is reoriented to RAS (axis permutation and flips only; oblique
    scans are shown in their nearest RAS orientation) and each plane is drawn
    in **radiological convention**: the patient's right on the viewer's left
    (axial, coronal), anterior at the top (axial), superior at the top
    (coronal, sagittal), anterior on the left (sagittal). Edge letters mark
    the directions. Pixels are drawn with their size in mm, so anisotropic
    voxels keep true proportions.

    Parameters
    ----------
    volume : Volume
        The image (kind "image"; for multi-channel images ``channel`` picks one).
    labels : Volume, optional
        Reference label map, drawn in the first overlay row.
    prediction : Volume, optional
        Predicted label map, drawn in its own row. Overlays on another grid
        are resampled (nearest neighbour) onto the image grid.
    centre_mm : sequence of 3 floats, optional
        RAS point (mm) where the planes cross; default: centre of the
        reference (or prediction) foreground, else the middle of the volume.
    window : str or (low, high), optional
        Grey-level window: a name from ``medseg.viz.WINDOWS_HU`` or values;
        default abdomen window for CT, else 1st-99th percentiles.
    alpha : float
        Opacity of the label colours.
    title : str, optional
        Figure title.
    panel_inches : float
        Height of one row of panels in inches.

    Returns
    -------
    matplotlib.figure.Figure
        One row per overlay (image only, reference, prediction) and one column per plane.

    Examples
    --------
    >>> from medseg.demo import make_phantom
    >>> case = make_phantom(shape=(24, 24, 16), spacing_mm=(1.5, 1.5, 3.0))
    >>> fig = show_slices(case.image, case.labels)
    >>> len(fig.axes)
    3
    """
    image = _as_ras(volume, what="image", channel=channel)
    reference = _on_grid(labels, image, what="labels")
    predicted = _on_grid(prediction, image, what="prediction")
    rows = [("image", None)]
    if reference is not None or predicted is not None:
        rows = []
        if reference is not None:
            rows.append(("reference", reference))
        if predicted is not None:
            rows.append(("prediction", predicted))
    index = slice_indices_at(image, centre_mm, [reference, predicted])
    win = resolve_window(image.array, window)
    names = _label_names(reference, predicted)
    colors = label_colors(list(names) or [1])
    spacing = image.spacing_mm
    widths = [image.shape[0] * spacing[0], image.shape[0] * spacing[0], image.shape[1] * spacing[1]]
    heights = [image.shape[1] * spacing[1], image.shape[2] * spacing[2], image.shape[2] * spacing[2]]
    panel_width = [panel_inches * w / max(heights) for w in widths]
    ncol, legend_room = _legend_layout(names, sum(panel_width) + 0.6)
    fig = new_figure((sum(panel_width) + 0.6, panel_inches * len(rows) + legend_room + 0.4))
    grid = fig.add_gridspec(len(rows), 3, width_ratios=widths, left=0.06, right=0.99,
                            bottom=legend_room / fig.get_figheight(), top=0.92, wspace=0.04,
                            hspace=0.12)
    for row, (row_name, overlay) in enumerate(rows):
        for col, plane in enumerate(PLANES):
            fixed = _FIXED_AXIS[plane]
            view, size_mm = plane_image(image.array, plane, index[fixed], spacing)
            over = None if overlay is None else plane_image(overlay.array, plane, index[fixed],
                                                            spacing)[0]
            ax = fig.add_subplot(grid[row, col])
            _draw_plane(ax, view, over, size_mm, window=win, colors=colors, alpha=alpha)
            _edge_marks(ax, plane)
            if row == 0:
                ax.set_title(f"{plane} ({'ijk'[fixed]}={index[fixed]})", fontsize=9)
            if col == 0:
                ax.set_ylabel(row_name, fontsize=9)
    _add_legend(fig, names, colors, ncol)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def montage(
    volume: Volume,
    labels: Volume | None = None,
    *,
    plane: str = "axial",
    n_slices: int = 12,
    ncols: int = 6,
    window: str | Sequence[float] | None = None,
    alpha: float = 0.4,
    channel: int = 0,
    panel_inches: float = 1.8,
) -> Figure:
    """A grid of evenly spaced slices in one plane (radiological convention, mm proportions).

    Parameters
    ----------
    volume : Volume
        The image.
    labels : Volume, optional
        Label map overlaid on every slice; slices then span the labelled range.
    plane : {"axial", "coronal", "sagittal"}
        Plane of the slices.
    n_slices, ncols
        Number of slices and of grid columns.
    window, alpha, channel
        As in :func:`show_slices`.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from medseg.demo import make_phantom
    >>> case = make_phantom(shape=(24, 24, 16))
    >>> len(montage(case.image, case.labels, n_slices=4, ncols=2).axes)
    4
    """
    if plane not in PLANES:
        raise VisualizationError(f"unknown plane {plane!r}; use one of {PLANES}")
    if n_slices < 1 or ncols < 1:
        raise VisualizationError(f"n_slices and ncols must be >= 1, got {n_slices} and {ncols}")
    image = _as_ras(volume, what="image", channel=channel)
    overlay = _on_grid(labels, image, what="labels")
    fixed = _FIXED_AXIS[plane]
    first, last = 0, image.shape[fixed] - 1
    if overlay is not None and np.any(overlay.array > 0):
        other = tuple(a for a in range(3) if a != fixed)
        hit = np.flatnonzero(np.any(overlay.array > 0, axis=other))
        first, last = int(hit[0]), int(hit[-1])
    count = min(int(n_slices), last - first + 1)
    indices = np.unique(np.round(np.linspace(first, last, count)).astype(int))
    names = _label_names(overlay)
    colors = label_colors(list(names) or [1])
    win = resolve_window(image.array, window)
    nrows = int(np.ceil(len(indices) / ncols))
    ncols_used = min(ncols, len(indices))
    _, size_mm = plane_image(image.array, plane, 0, image.spacing_mm)
    view_shape = plane_image(image.array, plane, 0, image.spacing_mm)[0].shape
    aspect = (view_shape[0] * size_mm[0]) / (view_shape[1] * size_mm[1])
    ncol, legend_room = _legend_layout(names, panel_inches * ncols_used)
    legend_room = legend_room if names else 0.0
    fig = new_figure((panel_inches * ncols_used, panel_inches * aspect * nrows + legend_room + 0.1))
    grid = fig.add_gridspec(nrows, ncols_used, left=0.01, right=0.99, top=0.99,
                            bottom=legend_room / fig.get_figheight() + 0.01, wspace=0.03,
                            hspace=0.03)
    for n, slice_index in enumerate(indices):
        ax = fig.add_subplot(grid[n // ncols_used, n % ncols_used])
        view, size = plane_image(image.array, plane, slice_index, image.spacing_mm)
        over = None if overlay is None else plane_image(overlay.array, plane, slice_index,
                                                        image.spacing_mm)[0]
        _draw_plane(ax, view, over, size, window=win, colors=colors, alpha=alpha)
        ax.text(0.03, 0.97, f"{'ijk'[fixed]}={slice_index}", transform=ax.transAxes, ha="left",
                va="top", color="yellow", fontsize=7)
    _add_legend(fig, names, colors, ncol)
    return fig
