"""Charts of tables: training curves from a run history, metric box plots per label.

Inputs are the tidy tables medseg writes (``history``, ``evaluate`` results).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from medseg.errors import VisualizationError
from medseg.viz.figures import label_colors, new_figure

__all__ = ["plot_training_curves", "plot_metric_boxes", "DEFAULT_BOX_METRICS"]

#: Metric columns drawn by :func:`plot_metric_boxes` when present.
DEFAULT_BOX_METRICS = ("dice", "hd95_mm", "assd_mm", "nsd_1mm")


def _as_frame(table, *, what: str) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table
    try:
        return pd.DataFrame(table)
    except (TypeError, ValueError) as exc:
        raise VisualizationError(
            f"{what}: expected a pandas DataFrame (or a list of row dicts), got {type(table).__name__}"
        ) from exc


def _plot_column(ax, epochs: np.ndarray, column: pd.Series, *, label: str | None = None,
                 thin: bool = False) -> None:
    """Plot one history column against epoch, skipping epochs without a value."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(values) & np.isfinite(epochs)
    ax.plot(epochs[keep], values[keep], marker="o", markersize=2 if thin else 3,
            linewidth=0.8 if thin else 1.5, alpha=0.8 if thin else 1.0, label=label)


def plot_training_curves(history: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Training loss, validation Dice and learning rate per epoch.

    Parameters
    ----------
    history : pandas.DataFrame
        One row per epoch with column ``epoch`` and at least one of
        ``train_loss``, ``val_dice``, ``lr`` (``TrainResult.history`` or a
        run's ``metrics.csv``). Missing values (epochs without validation)
        are skipped. Per-label columns ``dice_<name>`` are drawn beside the
        mean validation Dice.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per available quantity.

    Examples
    --------
    >>> history = pd.DataFrame({"epoch": [0, 1, 2], "train_loss": [1.0, 0.7, 0.5],
    ...                         "val_dice": [0.2, None, 0.6]})
    >>> [ax.get_ylabel() for ax in plot_training_curves(history).axes]
    ['train loss', 'validation Dice']
    """
    frame = _as_frame(history, what="history")
    if "epoch" not in frame.columns:
        raise VisualizationError(
            f"history: needs an 'epoch' column, got columns {list(frame.columns)}; "
            "pass TrainResult.history or the run's metrics.csv"
        )
    panels = [(c, label) for c, label in (("train_loss", "train loss"), ("val_dice", "validation Dice"),
                                          ("lr", "learning rate")) if c in frame.columns]
    if not panels:
        raise VisualizationError(
            f"history: none of train_loss, val_dice, lr among columns {list(frame.columns)}"
        )
    fig = new_figure((3.4 * len(panels), 3.0))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    epochs = pd.to_numeric(frame["epoch"], errors="coerce").to_numpy(dtype=float)
    per_label = [c for c in frame.columns if str(c).startswith("dice_")]
    for ax, (column, label) in zip(axes, panels):
        _plot_column(ax, epochs, frame[column], label="mean" if per_label else None)
        if column == "val_dice" and per_label:
            for extra in per_label:
                _plot_column(ax, epochs, frame[extra], label=str(extra)[5:], thin=True)
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if np.isfinite(epochs).any():
            low, high = np.nanmin(epochs), np.nanmax(epochs)
            ax.set_xlim(low - 0.5, high + 0.5)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if column == "val_dice":
            ax.set_ylim(0.0, 1.0)
        lr = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        if column == "lr" and np.isfinite(lr).any() and np.all(lr[np.isfinite(lr)] > 0):
            ax.set_yscale("log")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_metric_boxes(
    table: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    by: str = "label_name",
) -> Figure:
    """Box plots of per-case metrics, one box per label, one panel per metric.

    Parameters
    ----------
    table : pandas.DataFrame
        Tidy metrics (``medseg.metrics.evaluate`` / ``evaluate_folder`` output):
        one row per (case, label).
    metrics : sequence of str, optional
        Columns to draw; default those of ``dice, hd95_mm, assd_mm, nsd_1mm``
        present in the table.
    by : str
        Column that names the groups (``label_name``; falls back to ``label``).

    Returns
    -------
    matplotlib.figure.Figure
        Each box shows the finite values with the individual cases as dots;
        the panel title counts non-finite values (e.g. HD95 of an empty
        prediction) that were left out.

    Examples
    --------
    >>> table = pd.DataFrame({"case_id": ["a", "a", "b", "b"], "label_name": ["liver", "spleen"] * 2,
    ...                       "dice": [0.9, 0.8, 0.95, float("nan")]})
    >>> fig = plot_metric_boxes(table)
    >>> fig.axes[0].get_title()
    'dice (1 non-finite left out)'
    """
    frame = _as_frame(table, what="metrics table")
    if by not in frame.columns:
        by = "label" if "label" in frame.columns else by
    if by not in frame.columns:
        raise VisualizationError(
            f"metrics table: needs a {by!r} or 'label' column, got {list(frame.columns)}"
        )
    chosen = list(metrics) if metrics is not None else [m for m in DEFAULT_BOX_METRICS
                                                        if m in frame.columns]
    missing = [m for m in chosen if m not in frame.columns]
    if missing or not chosen:
        raise VisualizationError(
            f"metrics table: metric column(s) {missing or list(DEFAULT_BOX_METRICS)} not found among "
            f"{list(frame.columns)}"
        )
    groups = list(dict.fromkeys(frame[by].astype(str)))
    colors = label_colors(range(1, len(groups) + 1))
    fig = new_figure((max(3.0, 0.9 * len(groups) + 1.2) * len(chosen), 3.4))
    axes = fig.subplots(1, len(chosen), squeeze=False)[0]
    rng = np.random.default_rng(0)  # fixed jitter keeps figures reproducible
    for ax, metric in zip(axes, chosen):
        values = pd.to_numeric(frame[metric], errors="coerce").to_numpy(dtype=float)
        names = frame[by].astype(str).to_numpy()
        data = [values[(names == g) & np.isfinite(values)] for g in groups]
        dropped = int(np.sum(~np.isfinite(values)))
        positions = np.arange(1, len(groups) + 1)
        nonempty = [(p, d) for p, d in zip(positions, data) if d.size]
        if nonempty:
            ax.boxplot([d for _, d in nonempty], positions=[p for p, _ in nonempty], widths=0.6,
                       showfliers=False)
        for position, group_values, color in zip(positions, data, colors.values()):
            jitter = rng.uniform(-0.12, 0.12, group_values.size)
            ax.scatter(position + jitter, group_values, s=12, color=color, zorder=3)
        ax.set_xticks(positions)
        ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=8)
        ax.set_title(metric + (f" ({dropped} non-finite left out)" if dropped else ""), fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
        if metric == "dice" or metric.startswith("nsd"):
            ax.set_ylim(-0.02, 1.02)
    fig.tight_layout()
    return fig
