"""Training curves: loss and validation Dice per epoch, as a PNG (matplotlib, Agg backend).

Reads the history table the trainer keeps; written atomically beside metrics.csv.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medseg.atomic import atomic_path

__all__ = ["plot_curves"]


def plot_curves(history: pd.DataFrame, path: str | Path) -> Path:
    """Plot ``train_loss`` and ``val_dice`` (+ EMA) against ``epoch`` into ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3.5), dpi=100)
    loss_axis, dice_axis = figure.subplots(1, 2)
    loss_axis.plot(history["epoch"], history["train_loss"], marker="o", ms=3)
    loss_axis.set(xlabel="epoch", ylabel="training loss", title="loss")
    valid = history.dropna(subset=["val_dice"])
    dice_axis.plot(valid["epoch"], valid["val_dice"], marker="o", ms=3, label="val Dice")
    if "val_dice_ema" in valid:
        dice_axis.plot(valid["epoch"], valid["val_dice_ema"], label="EMA")
    dice_axis.set(xlabel="epoch", ylabel="mean foreground Dice", title="validation", ylim=(0, 1))
    dice_axis.legend(loc="lower right")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(path)
