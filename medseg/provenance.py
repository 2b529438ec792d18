"""Provenance records attached to every output: versions, config hash, inputs, seed.

One function builds the record so training, batch and demo outputs agree on its shape.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import platform
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from medseg.config import config_hash

__all__ = ["file_sha256", "provenance_record"]

_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (a folder: of its files' names and hashes, sorted)."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(child.relative_to(path)).encode())
            digest.update(file_sha256(child).encode())
        return digest.hexdigest()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def provenance_record(
    *,
    config: Any = None,
    inputs: Iterable[str | Path] = (),
    seed: int | None = None,
    hash_inputs: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """A JSON/YAML-safe record of how an output was made.

    Parameters
    ----------
    config
        Dataclass or mapping of the options used; stored as its hash.
    inputs
        Input files/folders; each is listed with its SHA-256 when ``hash_inputs``.
    seed
        Random seed of the run, if any.
    **extra
        More fields to store (e.g. ``bundle_sha256``).

    Examples
    --------
    >>> record = provenance_record(config={"epochs": 1}, seed=0)
    >>> sorted(record)[:4], record["config_hash"]
    (['config_hash', 'created_utc', 'inputs', 'medseg_version'], '2d96967c92421c4e')
    """
    from medseg import __version__

    record: dict[str, Any] = {
        "medseg_version": __version__,
        "config_hash": None if config is None else config_hash(config),
        "seed": seed,
        "inputs": [
            {"path": str(Path(p)), "sha256": file_sha256(p) if hash_inputs else None} for p in inputs
        ],
        "versions": {
            "python": platform.python_version(),
            **{name: _version(name) for name in ("numpy", "torch", "monai", "nibabel", "pydicom")},
        },
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    record.update(extra)
    return record
