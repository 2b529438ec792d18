"""``medseg predict``: segment a file, a folder, a DICOM tree or a CSV list with a model bundle.

A thin wrapper over :func:`medseg.batch.run`; prints a summary table at the end.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]

_HELP = (
    "Segment INPUT with a trained model bundle and write results to OUTPUT.\n\n"
    "INPUT is a NIfTI/NRRD/MHA file, a folder of them, a folder tree of DICOM studies (every "
    "series is found; choose with --modality/--series-include/--series-exclude), or a CSV with "
    "a 'path' column (optional 'case_id').\n\n"
    "OUTPUT gets labels/<case>.nii.gz, seg/<case>.dcm (DICOM input), measurements.csv, "
    "overlays/<case>.png (--overlays) and manifest.sqlite. Rerunning the same command skips "
    "finished cases; --retry-failed reruns failures.\n\n"
    "Exit codes: 0 all cases done; 1 some cases failed (listed with reasons in the manifest; "
    "the others are done); 2 error before any case ran (bad model, no input).\n\n"
    "Example: medseg predict scans/ results/ --model runs/liver/bundle --modality CT"
)


def register(app: typer.Typer) -> None:
    @app.command("predict", help=_HELP)
    def predict(
        input_path: Path = typer.Argument(..., metavar="INPUT", help="File, folder, DICOM tree or CSV."),
        output_dir: Path = typer.Argument(..., metavar="OUTPUT", help="Output folder."),
        model: list[Path] = typer.Option(..., "--model", "-m",
                                         help="Bundle folder; repeat to ensemble folds."),
        modality: str = typer.Option(None, help="Keep DICOM series of this modality (e.g. CT)."),
        series_include: str = typer.Option(None, help="Regex the SeriesDescription must match."),
        series_exclude: str = typer.Option(None, help="Regex excluding SeriesDescriptions."),
        retry_failed: bool = typer.Option(False, "--retry-failed", help="Rerun cases that failed before."),
        workers: int = typer.Option(None, help="Run on a local Dask cluster with N worker processes."),
        scheduler: str = typer.Option(None, help="Dask scheduler address, e.g. tcp://host:8786."),
        dicom_seg: bool = typer.Option(True, "--dicom-seg/--no-dicom-seg",
                                       help="Write DICOM-SEG for DICOM input."),
        measure: bool = typer.Option(True, "--measure/--no-measure", help="Write measurements."),
        overlays: bool = typer.Option(False, "--overlays", help="Write a three-plane QC overlay PNG."),
        tta: bool = typer.Option(False, "--tta", help="Mirroring test-time augmentation (8x slower)."),
        overlap: float = typer.Option(0.5, help="Sliding-window overlap in [0, 1)."),
        memory_budget_mb: float = typer.Option(None, help="Bound prediction memory (MiB)."),
        device: str = typer.Option("auto", help="auto, cpu or cuda."),
        precision: str = typer.Option("auto", help="auto, fp32, bf16 or fp16."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    ) -> None:
        from medseg.batch import run

        result = run(
            input_path, output_dir, model=[str(m) for m in model], workers=workers,
            scheduler=scheduler, retry_failed=retry_failed, write_dicom_seg=dicom_seg,
            measure=measure, overlays=overlays, modality=modality, series_include=series_include,
            series_exclude=series_exclude, device=device, tta=tta, overlap=overlap,
            memory_budget_mb=memory_budget_mb, precision=precision, progress=progress,
        )
        _print_summary(result)
        if result.exit_code:
            raise typer.Exit(result.exit_code)


def _print_summary(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"medseg predict -> {result.output_dir}")
    for column in ("case", "status", "predict s", "note"):
        table.add_column(column)
    for _, row in result.cases.iterrows():
        seconds = row.get("seconds_predict")
        table.add_row(str(row["case_id"]), str(row["status"]),
                      "" if seconds is None or seconds != seconds else f"{seconds:.1f}",
                      str(row["error"] or "")[:100])
    console = Console(stderr=True)
    console.print(table)
    console.print(f"done {result.done}, failed {result.failed}, skipped {result.skipped}; "
                  f"manifest {result.manifest_path}")
