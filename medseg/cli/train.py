"""``medseg plan``, ``medseg train`` and ``medseg export``: thin calls into medseg.data/training.

``train`` runs alike as one process or under ``torchrun --nproc_per_node=N -m medseg.cli.app train``.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan_command(
        dataset: Path = typer.Argument(..., help="Dataset folder (MSD / nnU-Net v2 raw) or CSV."),
        out: Path = typer.Option(Path("plan.yaml"), "--out", "-o", help="Plan YAML to write."),
        config: str = typer.Option("3d", "--config", "-c", help="3d or 2d."),
        workers: int = typer.Option(2, help="Processes reading cases."),
    ) -> None:
        """Fingerprint a dataset and write an editable training plan (spacing, patch, batch, network).

        Example: medseg plan data/Task03_Liver --config 3d --out plan.yaml
        """
        from medseg.data import compute_fingerprint, load_dataset, make_plan, save_plan

        ds = load_dataset(dataset, workers=workers)
        plan = make_plan(compute_fingerprint(ds, workers=workers, progress=True), config=config)  # type: ignore[arg-type]
        save_plan(plan, out)
        typer.echo(f"{plan.configuration} plan for {ds.name} ({len(ds.cases)} cases): spacing "
                   f"{list(plan.target_spacing_mm)} mm, patch {list(plan.patch_size)}, batch "
                   f"{plan.batch_size}, {len(plan.model_options['strides'])} stages -> {out}")

    @app.command("train")
    def train_command(
        dataset: Path = typer.Argument(..., help="Dataset folder (MSD / nnU-Net v2 raw) or CSV."),
        config: str = typer.Option("3d", "--config", "-c",
                                   help="Preset (3d, 2d, tiny3d, tiny2d) or a YAML file."),
        fold: int = typer.Option(0, "--fold", "-f", help="Validation fold."),
        epochs: int | None = typer.Option(None, "--epochs", help="Override the config's epochs."),
        out: Path | None = typer.Option(None, "--out", "-o",
                                           help="Run folder (default runs/<dataset>_<config>_fold<k>)."),
        plan: Path | None = typer.Option(None, "--plan", help="An edited plan.yaml."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
        seed: int = typer.Option(0, "--seed", help="Random seed (a CPU run repeats bit for bit)."),
        max_minutes: float | None = typer.Option(None, "--max-minutes",
                                                    help="Stop after this wall time; --resume later."),
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda:0, ..."),
    ) -> None:
        """Train a U-Net on one fold and write RUN/bundle for `medseg predict`.

        Example: medseg train data/Task03_Liver --config 3d --fold 0 --out runs/liver
        Multi-GPU: torchrun --nproc_per_node=4 -m medseg.cli.app train data/Task03_Liver --config 3d
        """
        from medseg.training import train

        name = Path(config).stem
        run_dir = out or Path("runs") / f"{Path(dataset).stem}_{name}_fold{fold}"
        result = train(dataset, out_dir=run_dir, config=config, plan=plan, fold=fold, epochs=epochs,
                       seed=seed, resume=resume, max_minutes=max_minutes, device=device)
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the job
            typer.echo(f"best validation Dice {result.best_val_dice:.4f} (epoch "
                       f"{result.best_epoch + 1}); bundle: {result.bundle_dir}")

    @app.command("export")
    def export_command(
        run: Path = typer.Argument(..., help="Training run folder or bundle folder."),
        format: str = typer.Option("torchscript", "--format", help="torchscript or onnx."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Output file."),
    ) -> None:
        """Export a trained network to TorchScript or ONNX (dynamic batch and spatial axes).

        Example: medseg export runs/liver --format onnx
        """
        from medseg.training.export import export_model

        typer.echo(str(export_model(run, format=format, out=out)))  # type: ignore[arg-type]
