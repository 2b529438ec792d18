"""``medseg info``: geometry and intensity summary of a volume file or folder.

A thin wrapper over :func:`medseg.read`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

__all__ = ["register", "describe"]


def describe(path: Path) -> dict:
    """Summary of a volume: shape, spacing_mm, orientation, origin_mm, kind, value range."""
    import medseg

    volume = medseg.read(path)
    array = volume.array
    return {
        "source": volume.source,
        "kind": volume.kind,
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "spacing_mm": [round(s, 4) for s in volume.spacing_mm],
        "orientation": volume.orientation,
        "origin_mm": [round(o, 3) for o in volume.origin_mm],
        "min": float(np.min(array)),
        "max": float(np.max(array)),
    }


def register(app: typer.Typer) -> None:
    @app.command("info")
    def info(path: Path = typer.Argument(..., help="NIfTI/NRRD/MHA file, DICOM file or folder.")) -> None:
        """Show a volume's geometry (shape, spacing_mm, orientation) and value range.

        Example: medseg info scans/ct_001.nii.gz
        """
        for key, value in describe(path).items():
            typer.echo(f"{key:12s} {value}")
