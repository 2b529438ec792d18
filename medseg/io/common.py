"""Helpers shared by the format readers: kind guessing, NaN checks, source metadata.

Kept free of any one file format.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InvalidArgumentError, InvalidVolumeError

__all__ = ["guess_kind", "check_finite", "provenance_meta", "storable_array"]

log = logging.getLogger(__name__)

_MAX_LABEL_VALUES = 64


def guess_kind(array: np.ndarray) -> str:
    """``'labels'`` for small non-negative integer/bool arrays with few values, else ``'image'``."""
    if array.dtype == np.bool_:
        return "labels"
    if not np.issubdtype(array.dtype, np.integer) or array.ndim != 3:
        return "image"
    # A strided sample rejects CT (thousands of values) without a full unique().
    sample = array[::4, ::4, ::2]
    if sample.size and (sample.min() < 0 or len(np.unique(sample)) > _MAX_LABEL_VALUES):
        return "image"
    values = np.unique(array)
    return "labels" if values.min(initial=0) >= 0 and len(values) <= _MAX_LABEL_VALUES else "image"


def check_finite(array: np.ndarray, *, source: str, on_invalid: str = "raise") -> None:
    """Reject NaN/inf voxels (``on_invalid='raise'``), or warn/ignore."""
    if on_invalid not in ("raise", "warn", "ignore"):
        raise InvalidArgumentError(f"on_invalid must be 'raise', 'warn' or 'ignore', got {on_invalid!r}")
    if on_invalid == "ignore" or not np.issubdtype(array.dtype, np.floating):
        return
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if not bad:
        return
    message = (
        f"{source}: {bad} voxel(s) are NaN or infinite; fix the file, or read with "
        "on_invalid='warn' and replace them (e.g. numpy.nan_to_num)"
    )
    if on_invalid == "raise":
        raise InvalidVolumeError(message)
    log.warning(message)


def provenance_meta(path: Path, **extra: Any) -> dict[str, Any]:
    """The ``meta`` every reader starts from: the absolute source path and format."""
    meta: dict[str, Any] = {"source": str(Path(path).resolve())}
    meta.update(extra)
    return meta


def storable_array(array: np.ndarray, *, allow_64bit: bool = True) -> np.ndarray:
    """Array in a dtype every format writer accepts: bool -> uint8, float16 -> float32, and
    (``allow_64bit=False``) int64 -> the smallest of int16/int32 that holds it, float64 -> float32.

    >>> storable_array(np.array([[[1, 300]]], dtype=np.int64), allow_64bit=False).dtype.name
    'int16'
    """
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    if allow_64bit:
        return array
    if array.dtype == np.float64:
        return array.astype(np.float32)
    if array.dtype in (np.int64, np.uint64):
        low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
        for candidate in (np.uint8, np.int16, np.int32):
            info = np.iinfo(candidate)
            if info.min <= low and high <= info.max:
                return array.astype(candidate)
        log.warning("values %d..%d need 64-bit integers; some tools cannot read them", low, high)
    return array
