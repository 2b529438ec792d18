"""``measure``: one tidy row of shape and intensity measurements per label (or per component).

Works on each object's crop; all positions and lengths are in RAS millimetres.
"""

from __future__ import annotations

import logging
from typing import Any

import cc3d
import numpy as np
import pandas as pd
from scipy import ndimage

from medseg import geometry
from medseg.errors import InvalidArgumentError
from medseg.measure.intensity import intensity_stats, intensity_unit
from medseg.measure.shape import (
    axial_diameters_mm,
    max_diameter_mm,
    mesh_measures,
    principal_axes_mm,
)
from medseg.metrics.boxes import label_boxes
from medseg.volume import Volume

__all__ = ["measure"]

log = logging.getLogger(__name__)


def _crop_affine(affine: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    out = np.array(affine, dtype=float)
    out[:3, 3] = geometry.apply_affine(affine, [[s.start for s in box]])[0]
    return out


def _axial(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mask on a grid whose third axis runs along the patient's S axis, its in-plane map
    and its own voxel -> RAS affine.

    Axis permutations/flips (sagittal or coronal acquisitions) need no interpolation;
    an oblique grid is resampled (nearest neighbour) onto an axis-aligned one.
    """
    direction = geometry.direction_from_affine(affine)
    permutation, flips = geometry.orientation_transform(affine, "RAS")
    aligned = np.allclose(np.abs(direction[:, list(permutation)]), np.eye(3), atol=1e-4)
    if aligned:
        array = np.transpose(mask, permutation)
        grid = np.array(affine, dtype=float)
        grid[:3, :3] = affine[:3, list(permutation)]
        return array, grid[:2, :2], grid
    spacing = np.asarray(geometry.spacing_from_affine(affine))
    target_spacing = np.array([spacing.min(), spacing.min(), spacing[permutation[2]]])
    corners = np.array(np.meshgrid(*[[-0.5, n - 0.5] for n in mask.shape], indexing="ij")).reshape(3, -1).T
    ras = geometry.apply_affine(affine, corners)
    low, high = ras.min(axis=0), ras.max(axis=0)
    shape = tuple(int(np.ceil(e)) + 1 for e in (high - low) / target_spacing)
    target = geometry.affine_from_spacing(target_spacing, origin_mm=low)
    mapping = np.linalg.inv(affine) @ target
    array = ndimage.affine_transform(mask.astype(np.uint8), mapping[:3, :3], offset=mapping[:3, 3],
                                     output_shape=shape, order=0, mode="constant", cval=0)
    return array.astype(bool), target[:2, :2], target


def _bbox_mm(affine: np.ndarray, box: tuple[slice, ...]) -> dict[str, float]:
    corners = np.array(np.meshgrid(*[[s.start - 0.5, s.stop - 0.5] for s in box], indexing="ij"))
    ras = geometry.apply_affine(affine, corners.reshape(3, -1).T)
    low, high = ras.min(axis=0), ras.max(axis=0)
    out = {}
    for axis, name in enumerate("xyz"):
        out[f"bbox_min_{name}_mm"] = float(low[axis])
        out[f"bbox_max_{name}_mm"] = float(high[axis])
    return out


def _object_row(mask: np.ndarray, box: tuple[slice, ...], volume: Volume,
                image: Volume | None, unit: str) -> dict[str, Any]:
    """All measurements of one object: ``mask`` is its crop at ``box`` in ``volume``."""
    affine = _crop_affine(volume.affine, box)
    index = np.argwhere(mask)
    n_voxels = len(index)
    mesh = mesh_measures(mask, affine)
    area = float(mesh["surface_area_mm2"])
    mesh_mm3 = float(mesh["volume_mesh_ml"]) * 1000.0
    axial_mask, inplane, axial_affine = _axial(mask, affine)
    axial = axial_diameters_mm(axial_mask, inplane)
    slice_z = geometry.apply_affine(axial_affine, [[0.0, 0.0, axial["axial_slice"]]])[0, 2]
    axes = principal_axes_mm(index, affine)
    centroid = geometry.apply_affine(affine, index.mean(axis=0)[None])[0]
    row: dict[str, Any] = {
        "n_voxels": n_voxels,
        "volume_ml": n_voxels * volume.voxel_volume_ml,
        "volume_mesh_ml": mesh_mm3 / 1000.0,
        "surface_area_mm2": area,
        "sphericity": float(np.pi ** (1 / 3) * (6 * mesh_mm3) ** (2 / 3) / area) if area else float("nan"),
        "max_diameter_mm": max_diameter_mm(mesh["vertices_mm"]),
        "axial_long_mm": axial["axial_long_mm"],
        "axial_short_mm": axial["axial_short_mm"],
        "axial_z_mm": float(slice_z),
        "principal_axis_major_mm": float(axes[0]),
        "principal_axis_mid_mm": float(axes[1]),
        "principal_axis_minor_mm": float(axes[2]),
        "centroid_x_mm": float(centroid[0]),
        "centroid_y_mm": float(centroid[1]),
        "centroid_z_mm": float(centroid[2]),
        **_bbox_mm(volume.affine, tuple(slice(s.start + int(i.min()), s.start + int(i.max()) + 1)
                                        for s, i in zip(box, index.T))),
        "touches_border": bool(any(s.start + int(i.min()) == 0 or s.start + int(i.max()) + 1 == n
                                   for s, i, n in zip(box, index.T, volume.shape))),
    }
    if image is not None:
        row.update(intensity_stats(image.array[box][mask], unit))
    return row


def measure(
    labels: Volume,
    image: Volume | None = None,
    *,
    per_component: bool = False,
    connectivity: int = 26,
    modality: str | None = None,
    case_id: str | None = None,
) -> pd.DataFrame:
    """Shape (and intensity) measurements of every label of a label map, in mm and mL.

    Parameters
    ----------
    labels : Volume
        Label map (0 = background). Each nonzero value is one structure.
    image : Volume, optional
        Image on the same grid; adds ``mean_hu ... max_hu`` (CT) or ``*_intensity``.
    per_component : bool
        One row per connected component (``component`` 1 = largest) instead of per label.
    connectivity : int
        6, 18 or 26 (components and ``n_components``).
    modality : str, optional
        Image modality when the file does not say (NIfTI/NRRD keep none): ``"CT"``
        names intensity columns ``*_hu``. Default: the image's ``meta["modality"]``.
    case_id : str, optional
        Adds a leading ``case_id`` column.

    Returns
    -------
    pandas.DataFrame
        ``label, label_name[, component], n_components, n_voxels, volume_ml`` (voxel
        count), ``volume_mesh_ml`` and ``surface_area_mm2`` (marching cubes at 0.5),
        ``sphericity``, ``max_diameter_mm`` (largest distance between mesh points),
        ``axial_long_mm``/``axial_short_mm`` (RECIST-style: longest diameter in a
        patient-axial plane and the longest extent perpendicular to it in that plane;
        ``axial_z_mm`` is that plane's RAS z),
        ``principal_axis_{major,mid,minor}_mm`` (ellipsoid of equal second moments),
        ``centroid_{x,y,z}_mm`` (RAS), ``bbox_{min,max}_{x,y,z}_mm`` (voxel edges, RAS),
        ``touches_border`` and intensity columns. Objects cut by the volume edge are
        closed by the edge face (flagged by ``touches_border``).

    Examples
    --------
    >>> box = np.zeros((10, 10, 10), np.uint8); box[2:6, 2:8, 3:5] = 1; box[0, 0, 0] = 2
    >>> table = measure(Volume.from_array(box, spacing_mm=(1, 1, 2), kind="labels"))
    >>> table[["label", "volume_ml", "touches_border"]].values.tolist()
    [[1, 0.096, False], [2, 0.002, True]]
    """
    if not isinstance(labels, Volume):
        raise InvalidArgumentError(
            "measure needs a labels Volume (geometry matters); wrap an array with "
            "Volume.from_array(array, spacing_mm=..., kind='labels')"
        )
    if labels.array.ndim != 3:
        raise InvalidArgumentError(f"{labels.source}: measure needs a 3D label map, got {labels.array.shape}")
    from medseg.metrics.evaluate import as_label_array

    array = as_label_array(labels, name=labels.source)
    if image is not None:
        if image.array.ndim != 3:
            raise InvalidArgumentError(f"{image.source}: image must be 3D, got {image.array.shape}")
        labels.require_same_grid(image)
    if image is not None and modality is not None:
        image = image.replace(meta={**image.meta, "modality": modality})
    unit = intensity_unit(image) if image is not None else ""
    rows = []
    for value, box in sorted(label_boxes(array).items()):
        mask = array[box] == value
        components, count = cc3d.connected_components(mask, connectivity=connectivity, return_N=True)
        base = {"label": value, "label_name": labels.labels.get(value, str(value))}
        if not per_component:
            rows.append({**base, "n_components": int(count), **_object_row(mask, box, labels, image, unit)})
            continue
        sizes = np.bincount(components.ravel(), minlength=count + 1)[1:]
        objects = ndimage.find_objects(components)
        for rank, component in enumerate(np.argsort(-sizes, kind="stable"), start=1):
            sub = objects[component]
            sub_box = tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, sub))
            sub_mask = components[sub] == component + 1
            rows.append({**base, "component": rank, "n_components": int(count),
                         **_object_row(sub_mask, sub_box, labels, image, unit)})
    table = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["label", "label_name"])
    if case_id is not None:
        table.insert(0, "case_id", case_id)
    if table.empty:
        log.info("%s: no labelled voxels to measure", labels.source)
    return table

