"""``medseg anomaly train|score``: train an anomaly (or lesion) model and score scans with it.

Thin wrappers over :func:`medseg.anomaly.train_anomaly_model`, ``train_lesion_detector`` and ``score_inputs``.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]

anomaly_app = typer.Typer(
    help="Anomaly maps from a model trained on normal scans, and supervised lesion detection.",
    no_args_is_help=True,
)


@anomaly_app.command("train")
def train_command(
    dataset: Path = typer.Argument(..., help="Folder of normal scans (or MSD dataset with imagesTr/)."),
    out: Path = typer.Option(Path("anomaly_bundle"), "--out", "-o", help="Bundle folder to write."),
    config: Path = typer.Option(None, "--config", help="YAML of DenoisingConfig (or, with "
                                "--lesion-labels, of TrainConfig / a preset name)."),
    iterations: int = typer.Option(None, "--iterations", help="Override the training iterations."),
    seed: int = typer.Option(0, "--seed", help="Seed; equal seeds repeat a CPU run."),
    lesion_labels: bool = typer.Option(
        False, "--lesion-labels", help="Train the supervised lesion detector on a labeled dataset "
        "(label 1 = lesion) instead; the bundle is OUT/bundle."),
    epochs: int = typer.Option(None, "--epochs", help="With --lesion-labels: training epochs."),
    min_size_mm3: float = typer.Option(10.0, "--min-size-mm3",
                                       help="With --lesion-labels: smallest lesion kept (mm^3)."),
) -> None:
    """Train on normal scans only; writes a bundle with the map threshold at the target FPR.

    Example: medseg anomaly train normals/ --out models/anomaly

    Example (supervised): medseg anomaly train lesions_dataset/ --lesion-labels --out runs/lesions
    """
    import dataclasses

    from medseg import anomaly

    if lesion_labels:
        preset = str(config) if config is not None else "tiny3d"
        detector, result = anomaly.train_lesion_detector(
            dataset, out_dir=out, config=preset, epochs=epochs, seed=seed,
            min_size_mm3=min_size_mm3)
        typer.echo(f"lesion bundle: {result.bundle_dir} (threshold {detector.threshold:.2f}, "
                   f"validation Dice {result.best_val_dice:.3f})")
        return
    cfg = anomaly.denoising.config_path_or_default(config)
    changes = {"seed": seed}
    if iterations is not None:
        changes["iterations"] = iterations
    cfg = dataclasses.replace(cfg, **changes)
    scorer = anomaly.train_anomaly_model(dataset, out_dir=out, config=cfg)
    typer.echo(f"anomaly bundle: {scorer.bundle_dir} (threshold {scorer.threshold:.4f} at "
               f"FPR {cfg.target_fpr})")


@anomaly_app.command("score")
def score_command(
    inputs: Path = typer.Argument(..., help="Scan file, folder of scans, or DICOM folder."),
    model: Path = typer.Option(..., "--model", "-m", help="Bundle from `medseg anomaly train`."),
    out: Path = typer.Option(Path("anomaly_scores"), "--out", "-o", help="Output folder."),
    overlays: bool = typer.Option(True, "--overlays/--no-overlays", help="Write a PNG per case."),
) -> None:
    """Write anomaly maps (NIfTI float), masks, overlays and cases.csv for each scan.

    With a lesion bundle: lesion probability, lesion instances, lesions.csv
    and the per-case suspicious score.

    Example: medseg anomaly score scans/ --model models/anomaly --out scores/
    """
    from medseg.anomaly.outputs import score_inputs

    table = score_inputs(inputs, model=model, out_dir=out, overlays=overlays)
    typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    typer.echo(f"wrote {len(table)} case(s) to {out}")


def register(app: typer.Typer) -> None:
    """Add the ``anomaly`` command group to the ``medseg`` app."""
    app.add_typer(anomaly_app, name="anomaly")
