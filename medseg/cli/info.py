"""``medseg info`` and ``medseg convert``: inspect a volume or DICOM folder, convert between formats.

Thin wrappers over :func:`medseg.read`, :func:`medseg.write` and the DICOM API.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

__all__ = ["register", "describe", "list_series", "convert"]

_FORMATS = {"nifti": (".nii.gz", ".nii"), "nrrd": (".nrrd", ".nhdr"), "mha": (".mha", ".mhd"), "dicom": ()}


def list_series(path: Path) -> list[dict] | None:
    """Rows describing each DICOM series under ``path``; ``None`` unless it is a folder/DICOMDIR
    holding more than one series."""
    if not (path.is_dir() or path.name.upper() == "DICOMDIR"):
        return None
    from medseg.io import find_dicom_series

    found = find_dicom_series(path)
    return found.table() if len(found.series) > 1 else None


def describe(path: Path, *, series_uid: str | None = None) -> dict:
    """Summary of a volume: shape, spacing_mm, orientation, origin_mm, kind, value range."""
    import medseg

    options = {"series_uid": series_uid} if series_uid else {}
    volume = medseg.read(path, **options)
    array = volume.array
    summary = {
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
    dicom = volume.meta.get("dicom")
    if dicom:
        summary["modality"] = dicom.get("Modality", "")
        summary["series_uid"] = dicom.get("SeriesInstanceUID", "")
        summary["description"] = dicom.get("SeriesDescription", "")
        if dicom.get("irregular_spacing") or dicom.get("gantry_tilt_deg"):
            summary["warning"] = "irregular slice spacing or gantry tilt (see log)"
    if volume.labels:
        summary["labels"] = dict(volume.labels)
    return summary


def convert(
    source: Path,
    target: Path,
    *,
    to: str | None = None,
    series_uid: str | None = None,
    modality: str = "CT",
    kind: str | None = None,
) -> Path:
    """Read ``source`` (any readable format) and write ``target`` (NIfTI/NRRD/MHA, or a DICOM folder)."""
    import medseg
    from medseg.errors import UnsupportedFormatError

    if to is not None and to not in _FORMATS:
        raise UnsupportedFormatError(f"--to {to!r}: choose one of {', '.join(_FORMATS)}")
    has_suffix = bool(target.suffix)
    if to == "dicom" and has_suffix:
        raise UnsupportedFormatError(f"{target}: a DICOM series is written into a folder; give a name without extension")
    if to is None and not has_suffix:
        raise UnsupportedFormatError(
            f"{target}: no extension; use .nii.gz, .nrrd or .mha, or pass --to dicom for a DICOM folder"
        )
    if to not in (None, "dicom") and not target.name.lower().endswith(_FORMATS[to]):
        raise UnsupportedFormatError(f"{target}: extension does not match --to {to} ({' or '.join(_FORMATS[to])})")
    options = {"series_uid": series_uid} if series_uid else {}
    volume = medseg.read(source, kind=kind, **options)  # type: ignore[arg-type]
    if to == "dicom":
        from medseg.io.dicom_write import write_dicom_series

        intercept = -1024.0 if modality.upper() == "CT" else 0.0
        description = f"converted from {source.name}"
        write_dicom_series(volume, target, modality=modality, series_description=description,
                           rescale_intercept=intercept, progress=True)
        return target
    return medseg.write(volume, target)


def _print_series(rows: list[dict], path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} DICOM series in {path}")
    for column in ("uid", "description", "modality", "n_frames", "n_files"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in ("uid", "description", "modality", "n_frames", "n_files")))
    Console(width=200).print(table)
    typer.echo("Pick one with --series-uid UID.")


def register(app: typer.Typer) -> None:
    @app.command("info")
    def info(
        path: Path = typer.Argument(..., help="NIfTI/NRRD/MHA file, DICOM file, folder or DICOMDIR."),
        series_uid: str = typer.Option(None, "--series-uid", help="Series to describe in a multi-series folder."),
    ) -> None:
        """Show a volume's geometry (shape, spacing_mm, orientation, origin) and value range.

        A DICOM folder with several series lists them as a table.

        Example: medseg info scans/ct_001.nii.gz ; medseg info dicom_study/ --series-uid 1.2.840...
        """
        rows = None if series_uid else list_series(path)
        if rows is not None:
            _print_series(rows, path)
            return
        for key, value in describe(path, series_uid=series_uid).items():
            typer.echo(f"{key:12s} {value}")

    @app.command("convert")
    def convert_command(
        source: Path = typer.Argument(..., help="Input: DICOM folder/file/DICOMDIR, NIfTI, NRRD or MHA."),
        target: Path = typer.Argument(..., help="Output file (.nii.gz/.nrrd/.mha) or folder with --to dicom."),
        to: str = typer.Option(None, "--to", help="Output format: nifti, nrrd, mha or dicom (default: from extension)."),
        series_uid: str = typer.Option(None, "--series-uid", help="Series to convert in a multi-series folder."),
        modality: str = typer.Option("CT", "--modality", help="DICOM output modality: CT, MR or PT."),
        kind: str = typer.Option(None, "--kind", help="Force the volume kind: image or labels."),
    ) -> None:
        """Convert a volume between formats (DICOM series in; NIfTI, NRRD, MHA or a DICOM series out).

        Example: medseg convert dicom_study/ ct.nii.gz --series-uid 1.2.840... ;
        medseg convert ct.nii.gz ct_dicom --to dicom
        """
        written = convert(source, target, to=to, series_uid=series_uid, modality=modality, kind=kind)
        typer.echo(f"wrote {written}")
