"""MetaImage (ITK's .mha with inline data, .mhd + separate raw file): a small reader and writer.

ITK stores world coordinates in LPS; Volumes are converted to and from RAS here.
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np

from medseg.atomic import atomic_path
from medseg.errors import InvalidVolumeError, UnreadableFileError, UnsupportedFormatError
from medseg.geometry import LPS_TO_RAS
from medseg.io.common import check_finite, guess_kind, provenance_meta, storable_array
from medseg.volume import Volume, VolumeKind

__all__ = ["read_metaimage", "write_metaimage", "parse_header"]

log = logging.getLogger(__name__)

_TYPES = {
    "MET_CHAR": np.int8,
    "MET_UCHAR": np.uint8,
    "MET_SHORT": np.int16,
    "MET_USHORT": np.uint16,
    "MET_INT": np.int32,
    "MET_UINT": np.uint32,
    "MET_LONG": np.int32,
    "MET_ULONG": np.uint32,
    "MET_LONG_LONG": np.int64,
    "MET_ULONG_LONG": np.uint64,
    "MET_FLOAT": np.float32,
    "MET_DOUBLE": np.float64,
}
_NAMES = {
    np.dtype(np.int8): "MET_CHAR",
    np.dtype(np.uint8): "MET_UCHAR",
    np.dtype(np.int16): "MET_SHORT",
    np.dtype(np.uint16): "MET_USHORT",
    np.dtype(np.int32): "MET_INT",
    np.dtype(np.uint32): "MET_UINT",
    np.dtype(np.int64): "MET_LONG_LONG",
    np.dtype(np.uint64): "MET_ULONG_LONG",
    np.dtype(np.float32): "MET_FLOAT",
    np.dtype(np.float64): "MET_DOUBLE",
}
_MAX_HEADER_BYTES = 65536


def parse_header(raw: bytes, *, path: Path) -> tuple[dict[str, str], int]:
    """Parse ``Key = Value`` lines up to ``ElementDataFile``; returns fields and data offset.

    >>> fields, offset = parse_header(b"NDims = 3\\nElementDataFile = LOCAL\\n\\x00\\x01", path=Path("x"))
    >>> fields["NDims"], offset
    ('3', 34)
    """
    fields: dict[str, str] = {}
    position = 0
    while position < len(raw):
        end = raw.find(b"\n", position)
        if end < 0:
            end = len(raw)
        line = raw[position:end].decode("latin-1").strip()
        position = end + 1
        if not line:
            continue
        if "=" not in line:
            raise UnreadableFileError(f"{path}: MetaImage header line {line[:40]!r} has no '='")
        key, value = (part.strip() for part in line.split("=", 1))
        fields[key] = value
        if key == "ElementDataFile":
            return fields, position
    raise UnreadableFileError(f"{path}: MetaImage header has no ElementDataFile line (truncated?)")


def _floats(fields: dict[str, str], key: str, n: int, default: list[float]) -> np.ndarray:
    if key not in fields:
        return np.asarray(default, dtype=float)
    values = np.asarray([float(v) for v in fields[key].split()], dtype=float)
    if values.size != n:
        raise UnreadableFileError(f"{key} has {values.size} values, expected {n}")
    return values


def read_metaimage(
    path: str | Path, *, kind: VolumeKind | None = None, on_invalid: str = "raise"
) -> Volume:
    """Read a MetaImage ``.mha``/``.mhd`` file into a RAS :class:`~medseg.Volume`.

    Parameters
    ----------
    path : str or Path
        Header file; ``.mhd`` data is read from its ``ElementDataFile``.
    kind : {"image", "labels", "probabilities"}, optional
        Force the kind; by default guessed from the values.
    on_invalid : {"raise", "warn", "ignore"}
        What to do with NaN/inf voxels.
    """
    path = Path(path)
    raw = path.read_bytes()
    fields, offset = parse_header(raw[:_MAX_HEADER_BYTES], path=path)
    ndims = int(fields.get("NDims", "3")) if fields.get("NDims", "3").isdigit() else -1
    if ndims not in (2, 3):
        raise InvalidVolumeError(
            f"{path}: MetaImage with NDims={fields.get('NDims')}; medseg reads 3D volumes (or 2D)"
        )
    try:
        sizes = [int(v) for v in fields["DimSize"].split()]
        spacing = _floats(fields, "ElementSpacing", ndims, [1.0] * ndims)
        if "ElementSpacing" not in fields and "ElementSize" in fields:
            spacing = _floats(fields, "ElementSize", ndims, [1.0] * ndims)
        origin = _floats(fields, "Offset", ndims, [0.0] * ndims)
        if "Offset" not in fields:
            origin = _floats(fields, "Origin", ndims, list(origin))
        matrix = _floats(fields, "TransformMatrix", ndims * ndims, list(np.eye(ndims).ravel()))
        channels = int(fields.get("ElementNumberOfChannels", "1"))
    except (KeyError, ValueError) as exc:
        raise UnreadableFileError(f"{path}: malformed MetaImage header ({exc})") from exc
    element = fields.get("ElementType", "")
    if element not in _TYPES:
        raise UnsupportedFormatError(f"{path}: MetaImage ElementType {element!r} is not supported")
    data_file = fields["ElementDataFile"]
    if data_file == "LOCAL":
        payload = raw[offset:]
    elif data_file.upper().startswith("LIST") or "%" in data_file:
        raise UnsupportedFormatError(f"{path}: MetaImage with ElementDataFile={data_file} (slice lists) is not supported")
    else:
        data_path = path.parent / data_file
        if not data_path.exists():
            raise UnreadableFileError(f"{path}: its data file {data_path} does not exist")
        payload = data_path.read_bytes()
    if fields.get("CompressedData", "False").lower() == "true":
        try:
            payload = zlib.decompress(payload)
        except zlib.error as exc:
            raise UnreadableFileError(f"{path}: compressed MetaImage data is corrupt ({exc})") from exc
    dtype = np.dtype(_TYPES[element])
    if fields.get("BinaryDataByteOrderMSB", fields.get("ElementByteOrderMSB", "False")).lower() == "true":
        dtype = dtype.newbyteorder(">")
    count = int(np.prod(sizes)) * channels
    if len(payload) < count * dtype.itemsize:
        raise UnreadableFileError(
            f"{path}: MetaImage data holds {len(payload)} bytes, expected {count * dtype.itemsize} (truncated?)"
        )
    values = np.frombuffer(payload, dtype=dtype, count=count).astype(dtype.newbyteorder("="))
    # x varies fastest on disk: read as (z, y, x[, c]) then reverse the spatial axes.
    array = values.reshape(tuple(reversed(sizes)) + ((channels,) if channels > 1 else ()))
    array = np.ascontiguousarray(np.moveaxis(array, list(range(ndims)), list(reversed(range(ndims)))))
    affine_lps = np.eye(4)
    # TransformMatrix lists each axis' direction vector in turn (ITK's convention).
    direction = matrix.reshape(ndims, ndims).T
    linear = direction * spacing[None, :]
    if ndims == 2:
        array = array[:, :, None] if channels == 1 else array[:, :, None, :]
        linear = np.pad(linear, ((0, 1), (0, 1)))
        linear[2, 2] = 1.0
        origin = np.append(origin, 0.0)
    affine_lps[:3, :3] = linear
    affine_lps[:3, 3] = origin
    check_finite(array, source=str(path), on_invalid=on_invalid)
    kind = kind or guess_kind(array)
    meta = provenance_meta(path, format="metaimage")
    return Volume(array, LPS_TO_RAS @ affine_lps, kind, {}, meta)


def write_metaimage(volume: Volume, path: str | Path, *, compress: bool = True) -> Path:
    """Write ``volume`` as MetaImage atomically (``.mha`` inline, ``.mhd`` + ``.zraw``/``.raw``).

    The header stores LPS geometry as ITK expects; data are zlib-compressed by default.
    """
    path = Path(path)
    array = storable_array(volume.array)
    if array.dtype not in _NAMES:
        raise UnsupportedFormatError(f"{path}: dtype {array.dtype} cannot be stored in MetaImage")
    affine_lps = LPS_TO_RAS @ volume.affine
    spacing = np.linalg.norm(affine_lps[:3, :3], axis=0)
    direction = affine_lps[:3, :3] / spacing[None, :]
    channels = 1 if array.ndim == 3 else array.shape[3]
    # (i, j, k[, c]) -> bytes with i fastest and channels interleaved.
    ordered = np.moveaxis(array, [0, 1, 2], [2, 1, 0]) if array.ndim == 3 else array.transpose(2, 1, 0, 3)
    payload = np.ascontiguousarray(ordered).astype(array.dtype.newbyteorder("<")).tobytes()
    if compress:
        payload = zlib.compress(payload, 1)
    numbers = lambda values: " ".join(f"{float(v):.17g}" for v in values)  # noqa: E731
    header = [
        "ObjectType = Image",
        "NDims = 3",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        f"CompressedData = {compress}",
    ]
    if compress:
        header.append(f"CompressedDataSize = {len(payload)}")
    header += [
        f"TransformMatrix = {numbers(direction.T.ravel())}",
        f"Offset = {numbers(affine_lps[:3, 3])}",
        "CenterOfRotation = 0 0 0",
        f"ElementSpacing = {numbers(spacing)}",
        f"DimSize = {' '.join(str(s) for s in volume.shape)}",
    ]
    if channels > 1:
        header.append(f"ElementNumberOfChannels = {channels}")
    header.append(f"ElementType = {_NAMES[array.dtype]}")
    if path.suffix.lower() == ".mhd":
        data_path = path.with_suffix(".zraw" if compress else ".raw")
        with atomic_path(data_path) as tmp:
            tmp.write_bytes(payload)
        header.append(f"ElementDataFile = {data_path.name}")
        text = ("\n".join(header) + "\n").encode("latin-1")
    else:
        header.append("ElementDataFile = LOCAL")
        text = ("\n".join(header) + "\n").encode("latin-1") + payload
    with atomic_path(path) as tmp:
        tmp.write_bytes(text)
    return path
