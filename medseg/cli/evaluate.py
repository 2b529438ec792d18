"""``medseg evaluate`` and ``medseg measure``: metric and measurement tables from label files.

Thin wrappers over :func:`medseg.metrics.evaluate` / ``evaluate_folder`` and :func:`medseg.measure.measure`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

__all__ = ["register"]

_SUMMARY_METRICS = ("dice", "hd95_mm", "assd_mm")
_MEASURE_COLUMNS = ("volume_ml", "max_diameter_mm", "axial_long_mm", "axial_short_mm", "mean_hu",
                    "mean_intensity")


def _print_table(title: str, table: pd.DataFrame) -> None:
    from rich.console import Console
    from rich.table import Table

    view = Table(title=title)
    for column in table.columns:
        view.add_column(str(column), justify="left" if column == table.columns[0] else "right")
    for row in table.itertuples(index=False):
        view.add_row(*[str(v) for v in row])
    Console().print(view)


def _mean_sd(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    from medseg.metrics import summarize

    summary = summarize(table[["label_name", *metrics]])
    out = pd.DataFrame({"label": summary.index})
    for metric in metrics:
        mean, sd = summary[f"{metric}_mean"].to_numpy(), summary[f"{metric}_sd"].fillna(0).to_numpy()
        out[metric] = [f"{m:.3f} ± {s:.3f}" if m == m else "n/a" for m, s in zip(mean, sd)]
    out["n"] = summary[f"{metrics[0]}_n"].to_numpy()
    return out


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` and ``measure`` commands to ``app``."""

    @app.command("evaluate")
    def evaluate_command(
        pred: Path = typer.Argument(..., help="Predicted label file, or a folder of them."),
        ref: Path = typer.Argument(..., help="Reference label file, or a folder (files pair by name)."),
        out: Path = typer.Option(None, "--out", "-o", help="Write the full table here (.csv or .tsv)."),
        surface: str = typer.Option("surfel", "--surface", help="Surface definition: surfel or voxel."),
        nsd_tolerance_mm: list[float] = typer.Option([1.0], "--nsd-tolerance-mm",
                                                     help="NSD tolerance in mm (repeatable)."),
        workers: int = typer.Option(2, "--workers", help="Processes for folders."),
    ) -> None:
        """Compare predicted and reference label maps: Dice, IoU, HD, HD95, ASSD, NSD, volumes.

        Prints mean ± sd per label and writes one row per case and label. With folders,
        unpaired or unreadable cases become rows with an `error` and the exit code is 1.

        Example: medseg evaluate preds/ labelsTr/ --out metrics.csv
        """
        from medseg.io import read
        from medseg.metrics import evaluate, evaluate_folder, write_table

        if pred.is_dir() or ref.is_dir():
            table = evaluate_folder(pred, ref, workers=workers, nsd_tolerance_mm=nsd_tolerance_mm,
                                    surface=surface)  # type: ignore[arg-type]
        else:
            table = evaluate(read(pred, kind="labels"), read(ref, kind="labels"), case_id=pred.name,
                             nsd_tolerance_mm=nsd_tolerance_mm, surface=surface)  # type: ignore[arg-type]
        failed = table[table["error"] != ""] if "error" in table.columns else table.iloc[:0]
        metrics = [*_SUMMARY_METRICS, *[c for c in table.columns if c.startswith("nsd_")]]
        if len(table) > len(failed):
            _print_table("mean ± sd per label", _mean_sd(table, metrics))
        for case, message in zip(failed["case_id"], failed.get("error", [])):
            typer.secho(f"{case}: {message}", err=True, fg=typer.colors.YELLOW)
        if out is not None:
            typer.echo(f"table: {write_table(table, out)}")
        if len(failed):
            raise typer.Exit(1)

    @app.command("measure")
    def measure_command(
        labels: Path = typer.Argument(..., help="Label file (NIfTI, NRRD, MHA)."),
        image: Path = typer.Option(None, "--image", help="Image on the same grid, for intensity stats."),
        out: Path = typer.Option(None, "--out", "-o", help="Write the full table here (.csv or .tsv)."),
        per_component: bool = typer.Option(False, "--per-component",
                                           help="One row per connected component."),
        modality: str = typer.Option(None, "--modality",
                                     help="Image modality if the file lacks it; CT gives *_hu columns."),
    ) -> None:
        """Measure every label: volume (mL), surface area, diameters (3D, RECIST axial), HU stats.

        Example: medseg measure liver_seg.nii.gz --image ct.nii.gz --modality CT --out measurements.csv
        """
        from medseg.io import read
        from medseg.measure import measure
        from medseg.metrics import write_table

        table = measure(read(labels, kind="labels"), read(image) if image is not None else None,
                        per_component=per_component, modality=modality, case_id=labels.name)
        shown = [c for c in ("label_name", "component", *_MEASURE_COLUMNS) if c in table.columns]
        _print_table(str(labels.name), table[shown].round(2))
        if out is not None:
            typer.echo(f"table: {write_table(table, out)}")
