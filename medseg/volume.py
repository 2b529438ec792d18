"""The ``Volume`` value type: a voxel array with its geometry in RAS millimetres.

Every module exchanges Volumes; operations return new Volumes, never mutate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from medseg import geometry
from medseg.errors import GeometryMismatchError, InvalidArgumentError, InvalidVolumeError

__all__ = ["Volume", "VolumeKind"]

VolumeKind = Literal["image", "labels", "probabilities"]
_KINDS = ("image", "labels", "probabilities")


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D (or 3D + channels) array with a voxel -> RAS millimetre affine.

    Parameters
    ----------
    array : numpy.ndarray
        Voxel values indexed ``[i, j, k]`` or ``[i, j, k, c]``.
    affine : numpy.ndarray
        4x4 matrix mapping voxel indices ``(i, j, k, 1)`` to RAS+ mm.
    kind : {"image", "labels", "probabilities"}
        What the values mean. Label maps are resampled without interpolating values.
    labels : dict of int to str
        Names of label values (label maps) or channels (probabilities).
    meta : dict
        Source path, modality, DICOM identifiers, provenance.

    Examples
    --------
    >>> vol = Volume.from_array(np.zeros((4, 5, 6)), spacing_mm=(0.7, 0.7, 2.5))
    >>> vol.shape, vol.spacing_mm
    ((4, 5, 6), (0.7, 0.7, 2.5))
    >>> vol.orientation
    'RAS'
    """

    array: np.ndarray
    affine: np.ndarray
    kind: VolumeKind = "image"
    labels: Mapping[int, str] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        affine = np.asarray(self.affine, dtype=np.float64)
        source = self.meta.get("source", "array") if isinstance(self.meta, Mapping) else "array"
        if array.ndim not in (3, 4):
            raise InvalidVolumeError(
                f"{source}: a Volume needs a 3D array (or 3D + channels), got shape {array.shape}; "
                "add a singleton axis for 2D slices (array[..., None])."
            )
        if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
            raise InvalidVolumeError(f"{source}: affine must be a finite 4x4 matrix, got {affine!r}")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise InvalidVolumeError(f"{source}: affine is singular (zero voxel size?): {affine!r}")
        if self.kind not in _KINDS:
            raise InvalidVolumeError(f"{source}: kind must be one of {_KINDS}, got {self.kind!r}")
        object.__setattr__(self, "array", array)
        object.__setattr__(self, "affine", affine)
        object.__setattr__(self, "labels", {int(k): str(v) for k, v in dict(self.labels).items()})
        object.__setattr__(self, "meta", dict(self.meta))

    # ----------------------------------------------------------------- build
    @classmethod
    def from_array(
        cls,
        array: np.ndarray,
        *,
        spacing_mm: Sequence[float] = (1.0, 1.0, 1.0),
        origin_mm: Sequence[float] = (0.0, 0.0, 0.0),
        direction: np.ndarray | None = None,
        kind: VolumeKind = "image",
        labels: Mapping[int, str] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Volume:
        """Create a Volume from an array and its spacing/origin/direction in RAS mm."""
        affine = geometry.affine_from_spacing(spacing_mm, origin_mm=origin_mm, direction=direction)
        return cls(np.asarray(array), affine, kind, dict(labels or {}), dict(meta or {}))

    def replace(self, **changes: Any) -> Volume:
        """Return a copy with some fields replaced (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def with_array(self, array: np.ndarray, **changes: Any) -> Volume:
        """Same geometry and metadata, new voxel values (shape[:3] must match)."""
        array = np.asarray(array)
        if array.shape[:3] != self.shape:
            raise GeometryMismatchError(
                f"{self.source}: new array has spatial shape {array.shape[:3]}, expected {self.shape}"
            )
        return dataclasses.replace(self, array=array, **changes)

    # ------------------------------------------------------------- geometry
    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(i, j, k)`` (channels excluded)."""
        return tuple(int(s) for s in self.array.shape[:3])  # type: ignore[return-value]

    @property
    def n_channels(self) -> int:
        """Number of channels (1 for a plain 3D array)."""
        return 1 if self.array.ndim == 3 else int(self.array.shape[3])

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size along i, j, k in millimetres."""
        return geometry.spacing_from_affine(self.affine)  # type: ignore[return-value]

    @property
    def origin_mm(self) -> tuple[float, float, float]:
        """RAS position of the centre of voxel (0, 0, 0) in millimetres."""
        return tuple(float(v) for v in self.affine[:3, 3])  # type: ignore[return-value]

    @property
    def direction(self) -> np.ndarray:
        """3x3 direction cosines; column ``n`` is voxel axis ``n`` in RAS."""
        return geometry.direction_from_affine(self.affine)

    @property
    def orientation(self) -> str:
        """Orientation code such as ``'RAS'`` or ``'LPS'``."""
        return "".join(geometry.axis_codes(self.affine))

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (1 mL = 1000 mm^3)."""
        return float(abs(np.linalg.det(self.affine[:3, :3])) / 1000.0)

    @property
    def source(self) -> str:
        """Where the volume came from (path or ``'array'``), for messages."""
        return str(self.meta.get("source", "array"))

    def index_to_ras_mm(self, indices: np.ndarray) -> np.ndarray:
        """Map (N, 3) voxel indices to RAS millimetres."""
        return geometry.apply_affine(self.affine, indices)

    def ras_mm_to_index(self, points_mm: np.ndarray) -> np.ndarray:
        """Map (N, 3) RAS millimetre points to (fractional) voxel indices."""
        return geometry.apply_affine(np.linalg.inv(self.affine), points_mm)

    def same_grid(self, other: Volume, *, atol_mm: float = 1e-3) -> bool:
        """True when both volumes share shape and voxel positions within ``atol_mm``.

        >>> a = Volume.from_array(np.zeros((3, 3, 3)))
        >>> a.same_grid(a.replace(affine=a.affine + 1e-5))
        True
        """
        if self.shape != other.shape:
            return False
        corners = np.array(np.meshgrid(*[[0, s - 1] for s in self.shape], indexing="ij"))
        corners = corners.reshape(3, -1).T
        delta = self.index_to_ras_mm(corners) - other.index_to_ras_mm(corners)
        return bool(np.abs(delta).max() <= atol_mm)

    def require_same_grid(self, other: Volume, *, atol_mm: float = 1e-3) -> None:
        """Raise :class:`GeometryMismatchError` naming both inputs if grids differ."""
        if not self.same_grid(other, atol_mm=atol_mm):
            raise GeometryMismatchError(
                f"{self.source} (shape {self.shape}, spacing {self.spacing_mm} mm, origin "
                f"{np.round(self.origin_mm, 3).tolist()}) and {other.source} (shape {other.shape}, "
                f"spacing {other.spacing_mm} mm, origin {np.round(other.origin_mm, 3).tolist()}) "
                "are not on the same voxel grid; resample one with `resample_like`."
            )

    # ----------------------------------------------------------- operations
    def reorient(self, to: str = "RAS") -> Volume:
        """Permute/flip axes (no interpolation) so the array is in orientation ``to``.

        >>> lps = Volume.from_array(np.arange(8).reshape(2, 2, 2), direction=np.diag([-1, -1, 1]))
        >>> ras = lps.reorient("RAS")
        >>> ras.orientation, bool(np.allclose(ras.index_to_ras_mm([[0, 0, 0]]), [[-1, -1, 0]]))
        ('RAS', True)
        """
        permutation, flips = geometry.orientation_transform(self.affine, to)
        if permutation == (0, 1, 2) and not any(flips):
            return self
        extra = tuple(range(3, self.array.ndim))
        array = np.transpose(self.array, permutation + extra)
        affine = self.affine.copy()
        affine[:3, :3] = self.affine[:3, list(permutation)]
        for axis, flip in enumerate(flips):
            if flip:
                array = np.flip(array, axis=axis)
                size = array.shape[axis]
                affine[:3, 3] = affine[:3, 3] + affine[:3, axis] * (size - 1)
                affine[:3, axis] = -affine[:3, axis]
        return self.replace(array=np.ascontiguousarray(array), affine=affine)

    def crop(self, slices: Sequence[slice]) -> Volume:
        """Crop with three index slices (step 1); the affine follows the new corner.

        >>> vol = Volume.from_array(np.zeros((10, 10, 10)), spacing_mm=(2, 2, 2))
        >>> vol.crop((slice(2, 5), slice(None), slice(0, 4))).origin_mm
        (4.0, 0.0, 0.0)
        """
        if len(slices) != 3:
            raise InvalidArgumentError("crop needs exactly three slices (i, j, k)")
        bounds = [s.indices(n) for s, n in zip(slices, self.shape)]
        if any(step != 1 for _, _, step in bounds):
            raise InvalidArgumentError("crop slices must have step 1; use resample to change spacing")
        start = np.array([b[0] for b in bounds], dtype=float)
        array = self.array[tuple(slice(b[0], b[1]) for b in bounds)]
        affine = self.affine.copy()
        affine[:3, 3] = geometry.apply_affine(self.affine, start[None])[0]
        return self.replace(array=array, affine=affine)

    def bounding_box(self, *, margin_voxels: int = 0) -> tuple[slice, slice, slice] | None:
        """Index slices around the nonzero voxels (``None`` if all zero)."""
        mask = self.array != 0 if self.array.ndim == 3 else np.any(self.array != 0, axis=3)
        if not mask.any():
            return None
        out = []
        for axis in range(3):
            other = tuple(a for a in range(3) if a != axis)
            hit = np.flatnonzero(mask.any(axis=other))
            lo = max(int(hit[0]) - margin_voxels, 0)
            hi = min(int(hit[-1]) + 1 + margin_voxels, self.shape[axis])
            out.append(slice(lo, hi))
        return tuple(out)  # type: ignore[return-value]

    def resample(
        self,
        *,
        spacing_mm: Sequence[float] | float,
        order: int | None = None,
    ) -> Volume:
        """Resample to a new voxel size over the same field of view.

        Label maps are resampled per label (one-hot, linear, argmax) when
        ``order`` > 0, nearest neighbour when ``order == 0``; label values are
        never interpolated. Default order: 3 for images, 1 for labels and
        probabilities.
        """
        from medseg.resample import resample_to_spacing

        return resample_to_spacing(self, spacing_mm=spacing_mm, order=order)

    def resample_like(self, other: Volume, *, order: int | None = None) -> Volume:
        """Resample onto ``other``'s voxel grid (shape and affine)."""
        from medseg.resample import resample_to_grid

        return resample_to_grid(self, affine=other.affine, shape=other.shape, order=order)

    def __repr__(self) -> str:
        return (
            f"Volume(kind={self.kind!r}, shape={self.array.shape}, dtype={self.array.dtype}, "
            f"spacing_mm={tuple(round(s, 4) for s in self.spacing_mm)}, "
            f"orientation={self.orientation!r}, source={self.source!r})"
        )
