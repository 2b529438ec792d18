"""NRRD reading and writing through pynrrd (.nrrd, .seg.nrrd, detached .nhdr headers).

The header's "space" (LPS or RAS) decides the world frame; Volumes are always RAS.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from medseg.atomic import atomic_path
from medseg.errors import InvalidVolumeError, UnreadableFileError, UnsupportedFormatError
from medseg.geometry import LPS_TO_RAS
from medseg.io.common import check_finite, guess_kind, provenance_meta, storable_array
from medseg.volume import Volume, VolumeKind

__all__ = ["read_nrrd", "write_nrrd"]

log = logging.getLogger(__name__)

# NRRD space names -> sign flips that take the space's axes to RAS.
_SPACES = {
    "right-anterior-superior": np.eye(4),
    "ras": np.eye(4),
    "left-posterior-superior": LPS_TO_RAS,
    "lps": LPS_TO_RAS,
    "left-anterior-superior": np.diag([-1.0, 1.0, 1.0, 1.0]),
    "las": np.diag([-1.0, 1.0, 1.0, 1.0]),
    "scanner-xyz": np.eye(4),
    "3d-right-handed": np.eye(4),
}
_SEGMENT_KEY = re.compile(r"Segment(\d+)_(Name|LabelValue|Layer)$")


def _to_ras(space: str, path: Path) -> np.ndarray:
    key = space.lower().replace("-time", "")
    if key not in _SPACES:
        raise UnsupportedFormatError(
            f"{path}: NRRD space {space!r} is not supported; expected an anatomical space such as "
            "'left-posterior-superior' or 'right-anterior-superior'"
        )
    if key in ("scanner-xyz", "3d-right-handed"):
        log.warning("%s: NRRD space %r has no anatomical meaning; treating it as RAS", path, space)
    return _SPACES[key]


def _segment_labels(header: dict) -> dict[int, str]:
    segments: dict[str, dict[str, str]] = {}
    for key, value in header.items():
        match = _SEGMENT_KEY.match(str(key))
        if match:
            segments.setdefault(match.group(1), {})[match.group(2)] = str(value)
    labels = {}
    for fields in segments.values():
        if "LabelValue" in fields and int(fields.get("Layer", "0") or 0) == 0:
            labels[int(fields["LabelValue"])] = fields.get("Name", f"label {fields['LabelValue']}")
    return labels


def read_nrrd(path: str | Path, *, kind: VolumeKind | None = None, on_invalid: str = "raise") -> Volume:
    """Read a NRRD file (attached or detached header) into a RAS :class:`~medseg.Volume`.

    Parameters
    ----------
    path : str or Path
        ``.nrrd``, ``.seg.nrrd`` or ``.nhdr`` file.
    kind : {"image", "labels", "probabilities"}, optional
        Force the kind; by default Slicer segment fields or integer values decide.
    on_invalid : {"raise", "warn", "ignore"}
        What to do with NaN/inf voxels.

    Returns
    -------
    Volume
        Axes in the file's order (a non-spatial axis moves last as channels).
    """
    import nrrd

    path = Path(path)
    try:
        data, header = nrrd.read(str(path))
    except Exception as exc:  # pynrrd raises NRRDError, OSError, ValueError, zlib errors
        raise UnreadableFileError(
            f"{path}: cannot read as NRRD ({type(exc).__name__}: {exc}); the file may be truncated "
            "or its detached data file missing"
        ) from exc
    kinds = [str(k).lower() for k in header.get("kinds", ["domain"] * data.ndim)]
    spatial = [axis for axis, k in enumerate(kinds) if k in ("domain", "space")]
    if len(spatial) != 3 or data.ndim not in (3, 4):
        raise InvalidVolumeError(
            f"{path}: NRRD has {data.ndim} axes of kinds {kinds}; medseg reads 3 spatial axes "
            "plus at most one channel/list axis"
        )
    other = [axis for axis in range(data.ndim) if axis not in spatial]
    directions = header.get("space directions")
    linear = np.eye(3)
    if directions is not None:
        rows = [np.asarray(directions[a], dtype=float) for a in spatial]
        linear = np.stack(rows, axis=1)
    elif "spacings" in header:
        linear = np.diag([float(header["spacings"][a]) for a in spatial])
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = np.asarray(header.get("space origin", np.zeros(3)), dtype=float)
    space = header.get("space")
    if space is not None:
        affine = _to_ras(str(space), path) @ affine
    else:
        log.warning("%s: NRRD header has no 'space' field; assuming RAS", path)
    array = np.moveaxis(data, spatial + other, list(range(data.ndim)))
    check_finite(array, source=str(path), on_invalid=on_invalid)
    labels = _segment_labels(header)
    if kind is None:
        kind = "labels" if labels or path.name.lower().endswith(".seg.nrrd") else guess_kind(array)
    if array.ndim == 4 and kind == "labels":
        raise InvalidVolumeError(
            f"{path}: segmentation with {array.shape[3]} overlapping layers; medseg label maps "
            "need one layer (export the segmentation as a labelmap)"
        )
    meta = provenance_meta(path, format="nrrd", space=str(space) if space else None)
    return Volume(array, affine, kind, labels, meta)


def write_nrrd(volume: Volume, path: str | Path, *, compression_level: int = 1) -> Path:
    """Write ``volume`` as an attached-header, gzip-compressed NRRD in LPS space, atomically.

    Label maps keep their names as Slicer segment fields (``Segment0_Name`` ...).
    """
    import nrrd

    path = Path(path)
    if path.name.lower().endswith(".nhdr"):
        raise UnsupportedFormatError(f"{path}: medseg writes attached-header NRRD only; use .nrrd")
    array = storable_array(volume.array)
    affine_lps = LPS_TO_RAS @ volume.affine
    directions = [affine_lps[:3, axis].tolist() for axis in range(3)]
    header: dict = {
        "space": "left-posterior-superior",
        "space origin": affine_lps[:3, 3],
        "kinds": ["domain", "domain", "domain"],
        "encoding": "gzip",
    }
    if array.ndim == 4:
        header["kinds"].append("vector")
        directions.append([np.nan] * 3)  # pynrrd writes a NaN row as "none"
    header["space directions"] = np.array(directions, dtype=float)
    custom: dict = {}
    for number, (value, name) in enumerate(sorted(volume.labels.items())):
        if volume.kind != "labels":
            break
        for field, text in (("ID", f"Segment_{value}"), ("Name", name), ("LabelValue", str(value)), ("Layer", "0")):
            header[f"Segment{number}_{field}"] = text
            custom[f"Segment{number}_{field}"] = "string"
    with atomic_path(path) as tmp:
        nrrd.write(str(tmp), np.asarray(array), header, custom_field_map=custom or None,
                   compression_level=compression_level)
    return path
