"""Tests of medseg.viz.plots: curves and box plots draw exactly the table's values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medseg.errors import VisualizationError
from medseg.viz import plot_metric_boxes, plot_training_curves, save_figure


def test_training_curves_draw_history(tmp_path, check_png):
    history = pd.DataFrame({"epoch": [0, 1, 2, 3], "train_loss": [1.0, 0.6, 0.5, 0.4],
                            "val_dice": [0.1, np.nan, 0.5, 0.7], "lr": [1e-2, 5e-3, 2e-3, 1e-3],
                            "seconds": [3.0, 3.0, 3.0, 3.0]})
    fig = plot_training_curves(history, title="run")
    loss_ax, dice_ax, lr_ax = fig.axes
    np.testing.assert_allclose(loss_ax.lines[0].get_ydata(), [1.0, 0.6, 0.5, 0.4])
    # The epoch without validation is skipped, not drawn as zero.
    np.testing.assert_allclose(dice_ax.lines[0].get_xdata(), [0, 2, 3])
    assert lr_ax.get_yscale() == "log"
    path = save_figure(fig, tmp_path / "curves.png", dpi=40)
    width, height = fig.get_size_inches() * 40
    check_png(path, width=int(round(width)), height=int(round(height)))


def test_training_curves_need_epoch_column():
    with pytest.raises(VisualizationError, match="'epoch'"):
        plot_training_curves(pd.DataFrame({"loss": [1.0]}))


def test_metric_boxes_group_by_label():
    table = pd.DataFrame({
        "case_id": ["a", "a", "b", "b", "c", "c"],
        "label": [1, 2] * 3,
        "label_name": ["liver", "spleen"] * 3,
        "dice": [0.9, 0.5, 0.8, 0.6, 0.7, 0.4],
        "hd95_mm": [1.0, np.inf, 2.0, 3.0, 4.0, 5.0],
    })
    fig = plot_metric_boxes(table)
    dice_ax, hd_ax = fig.axes
    assert [t.get_text() for t in dice_ax.get_xticklabels()] == ["liver", "spleen"]
    # Each label's dots are exactly that label's values.
    liver_dots = np.sort(dice_ax.collections[0].get_offsets()[:, 1])
    spleen_dots = np.sort(dice_ax.collections[1].get_offsets()[:, 1])
    np.testing.assert_allclose(liver_dots, [0.7, 0.8, 0.9])
    np.testing.assert_allclose(spleen_dots, [0.4, 0.5, 0.6])
    assert hd_ax.get_title() == "hd95_mm (1 non-finite left out)"
    assert len(hd_ax.collections[1].get_offsets()) == 2


def test_metric_boxes_reject_missing_columns():
    with pytest.raises(VisualizationError, match="not found"):
        plot_metric_boxes(pd.DataFrame({"label": [1], "dice": [1.0]}), metrics=["hd95_mm"])


def test_training_curves_show_per_label_dice():
    history = pd.DataFrame({"epoch": [0, 1], "val_dice": [0.4, 0.6], "dice_liver": [0.8, 0.9],
                            "dice_spleen": [0.0, 0.3]})
    (dice_ax,) = plot_training_curves(history).axes
    assert [t.get_text() for t in dice_ax.get_legend().get_texts()] == ["mean", "liver", "spleen"]
    np.testing.assert_allclose(dice_ax.lines[2].get_ydata(), [0.0, 0.3])
