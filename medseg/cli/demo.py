"""``medseg demo``: train, predict, evaluate and report on synthetic data in a few CPU minutes.

A thin wrapper over :func:`medseg.demo.run_demo`.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to ``app``."""

    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("medseg-demo"), "--out", help="Folder for all demo outputs."),
        minutes: float = typer.Option(3.0, "--minutes", help="Training time budget in minutes."),
        seed: int = typer.Option(0, "--seed", help="Seed for the synthetic data and training."),
    ) -> None:
        """Train, predict, evaluate and report end to end on synthetic CT, in minutes on a CPU.

        Generates a small dataset, trains a 3D U-Net (progress bar), writes held-out cases as
        DICOM series, segments them, writes NIfTI and DICOM-SEG, computes Dice/HD95/NSD and
        volumes, and writes OUT/report.html. Nothing is downloaded.

        Example: medseg demo --out ./medseg-demo --minutes 3
        """
        from medseg.demo import run_demo

        result = run_demo(out, minutes=minutes, seed=seed)
        summary = result.metrics.groupby("label_name", sort=False)["dice"].mean()
        for name, dice in summary.items():
            typer.echo(f"held-out Dice {name:12s} {dice:.3f}")
        typer.echo(f"metrics:      {result.out_dir / 'metrics.csv'}")
        typer.echo(f"measurements: {result.out_dir / 'measurements.csv'}")
        typer.echo(f"report:       {result.report_path}")
