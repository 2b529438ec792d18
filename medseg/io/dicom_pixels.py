"""Pixel data of DICOM frames into one preallocated stack, then RescaleSlope/Intercept.

Native little-endian frames are read straight into the output buffer; others go through pydicom.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from medseg.errors import MissingExtraError, UnreadableFileError
from medseg.io.dicom_discovery import DicomFrameHeader

__all__ = ["check_decodable", "raw_dtype", "read_frames", "apply_rescale"]

log = logging.getLogger(__name__)

_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_IMPLICIT_LE = "1.2.840.10008.1.2"


def check_decodable(header: DicomFrameHeader) -> None:
    """Raise :class:`MissingExtraError` if no installed plugin decodes the file's transfer syntax."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    uid = UID(header.transfer_syntax)
    if not uid.is_encapsulated:
        return
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        decoder = None
    if decoder is None or not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) if decoder is not None else "no decoder"
        raise MissingExtraError(
            f"{header.path}: pixel data is compressed with transfer syntax {uid.name} ({uid}) and no "
            f"installed decoder handles it ({missing}); install the DICOM extra: "
            'pip install "medseg[dicom]"'
        )


def raw_dtype(header: DicomFrameHeader) -> np.dtype:
    """Numpy dtype of the stored values (before rescale)."""
    signed = header.pixel_representation == 1
    bits = header.bits_allocated
    if bits not in (8, 16, 32):
        raise UnreadableFileError(
            f"{header.path}: BitsAllocated={bits} is not supported (8, 16 or 32 expected)"
        )
    return np.dtype(f"{'i' if signed else 'u'}{bits // 8}")


def _fast_path(header: DicomFrameHeader) -> bool:
    return (
        header.transfer_syntax in (_EXPLICIT_LE, _IMPLICIT_LE)
        and sys.byteorder == "little"
        and header.pixel_offset is not None
        and header.samples_per_pixel == 1
        and header.n_frames == 1
        and (header.bits_stored == header.bits_allocated or header.pixel_representation == 0)
        and header.photometric in ("MONOCHROME2", "MONOCHROME1")
    )


def _read_native(header: DicomFrameHeader, out: np.ndarray) -> None:
    buffer = memoryview(out.reshape(-1).view(np.uint8))
    with open(header.path, "rb") as handle:
        handle.seek(header.pixel_offset)  # type: ignore[arg-type]
        got = handle.readinto(buffer)
    if got != buffer.nbytes:
        raise UnreadableFileError(f"{header.path}: pixel data is truncated ({got} of {buffer.nbytes} bytes)")
    if header.bits_stored < header.bits_allocated:
        # Unused high bits may hold overlays; DICOM says to ignore them.
        np.bitwise_and(out, (1 << header.bits_stored) - 1, out=out)


def decode_with_pydicom(path, *, what: str = "pixel data") -> tuple[object, np.ndarray]:
    """Read a file fully and decode its pixel data (any transfer syntax with a plugin)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        return ds, ds.pixel_array
    except Exception as exc:  # decoders raise many types for corrupt data
        raise UnreadableFileError(
            f"{path}: cannot decode {what} ({type(exc).__name__}: {exc}); the file may be corrupt"
        ) from exc


def _read_one(header: DicomFrameHeader, out: np.ndarray) -> None:
    if _fast_path(header):
        _read_native(header, out)
        return
    _, pixels = decode_with_pydicom(header.path)
    if pixels.shape != out.shape:
        raise UnreadableFileError(
            f"{header.path}: decoded frame has shape {pixels.shape}, expected {out.shape} "
            "(colour or multi-frame file in a single-frame series?)"
        )
    out[...] = pixels


def read_frames(
    headers: Sequence[DicomFrameHeader], *, workers: int | None = None
) -> np.ndarray:
    """Stored values of single-frame files as a preallocated (slice, row, column) array."""
    first = headers[0]
    for header in {h.transfer_syntax: h for h in headers}.values():
        check_decodable(header)
    dtype = raw_dtype(first)
    stack = np.empty((len(headers), first.rows, first.columns), dtype=dtype)
    n_workers = workers or min(4, (os.cpu_count() or 1) + 1)
    if n_workers > 1 and len(headers) > 4:
        with ThreadPoolExecutor(n_workers) as pool:
            for future in [pool.submit(_read_one, h, stack[k]) for k, h in enumerate(headers)]:
                future.result()
    else:
        for k, header in enumerate(headers):
            _read_one(header, stack[k])
    return stack


def apply_rescale(
    stack: np.ndarray, slopes: Sequence[float], intercepts: Sequence[float]
) -> np.ndarray:
    """Apply per-frame RescaleSlope/Intercept, reusing ``stack``'s memory where possible.

    Integral rescales give int16 (int32 if int16 overflows); others float32.

    >>> raw = np.array([[[0, 1024, 4095]]], dtype=np.uint16)
    >>> out = apply_rescale(raw, [1.0], [-1024.0])
    >>> out.dtype.name, out.ravel().tolist()
    ('int16', [-1024, 0, 3071])
    """
    slopes = np.asarray(slopes, dtype=float)
    intercepts = np.asarray(intercepts, dtype=float)
    integral = np.all(slopes == 1.0) and np.all(intercepts == np.round(intercepts))
    if not integral:
        out = np.empty(stack.shape, dtype=np.float32)
        for k in range(stack.shape[0]):
            np.multiply(stack[k], np.float32(slopes[k]), out=out[k], casting="unsafe")
            out[k] += np.float32(intercepts[k])
        return out
    if np.all(intercepts == 0) and stack.dtype in (np.int16, np.uint8, np.int8, np.int32):
        return stack
    low = float(stack.min()) + float(intercepts.min())
    high = float(stack.max()) + float(intercepts.max())
    fits16 = -32768 <= low and high <= 32767
    if fits16 and stack.dtype.itemsize == 2:
        # Wrap-around addition in the stored width, then reinterpret as int16: no copy.
        work = stack.view(np.uint16)
        if np.all(intercepts == intercepts[0]):
            np.add(work, np.uint16(int(intercepts[0]) & 0xFFFF), out=work)
        else:
            for k in range(stack.shape[0]):
                np.add(work[k], np.uint16(int(intercepts[k]) & 0xFFFF), out=work[k])
        return work.view(np.int16)
    out = stack.astype(np.int16 if fits16 else np.int32)
    for k in range(out.shape[0]):
        if intercepts[k]:
            out[k] += out.dtype.type(intercepts[k])
    return out
