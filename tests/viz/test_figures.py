"""Tests of medseg.viz.figures: atomic saving, PNG bytes, colours and windows."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.viz import figure_to_png_bytes, label_colors, new_figure, resolve_window, save_figure


def test_save_figure_is_atomic_and_sized(tmp_path, check_png):
    fig = new_figure((3.0, 2.0))
    ax = fig.add_subplot()
    ax.imshow(np.random.default_rng(0).uniform(size=(20, 30)))
    path = save_figure(fig, tmp_path / "sub" / "figure.png", dpi=60)
    check_png(path, width=180, height=120)
    assert [p.name for p in path.parent.iterdir()] == ["figure.png"]


def test_failed_save_leaves_no_file(tmp_path):
    with pytest.raises(ValueError):
        save_figure(new_figure((1, 1)), tmp_path / "figure.notaformat")
    assert list(tmp_path.iterdir()) == []


def test_png_bytes_and_colours():
    data = figure_to_png_bytes(new_figure((2, 1)), dpi=30)
    assert data.startswith(b"\x89PNG")
    colors = label_colors(range(1, 40))
    assert len(set(colors.values())) == 39
    assert label_colors([3])[3] == colors[3]


def test_resolve_window_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown window"):
        resolve_window(np.zeros(2), "liverish")
    assert resolve_window(np.full(4, 7.0), None) == (7.0, 8.0)
