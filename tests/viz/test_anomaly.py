"""Tests of medseg.viz.anomaly: heat opacity follows the score, planes cross at the maximum."""

from __future__ import annotations

import numpy as np

from medseg import Volume
from medseg.demo import make_phantom
from medseg.viz import save_figure, show_anomaly_map


def test_anomaly_map_crosses_at_maximum_and_hides_low_scores(tmp_path, check_png):
    case = make_phantom(shape=(30, 28, 20), spacing_mm=(1.5, 1.5, 3.0), seed=5)
    score = np.zeros(case.image.shape, dtype=np.float32)
    score[20, 9, 5] = 1.0
    score[5:8, 5:8, 5] = 0.2
    fig = show_anomaly_map(case.image, case.image.with_array(score), threshold=0.5,
                           score_range=(0.0, 1.0))
    axial, coronal, sagittal, colorbar = fig.axes
    assert [ax.get_title() for ax in (axial, coronal, sagittal)] == [
        "axial (k=5)", "coronal (j=9)", "sagittal (i=20)"]
    heat = axial.images[1].get_array()
    visible = np.argwhere(heat[..., 3] > 0)
    # Only the voxel above the threshold is drawn: i=20 shows at column 30-1-20, j=9 at row 28-1-9.
    assert visible.tolist() == [[18, 9]]
    assert colorbar.get_ylabel() == "score"
    path = save_figure(fig, tmp_path / "anomaly.png", dpi=50)
    width, height = fig.get_size_inches() * 50
    check_png(path, width=int(round(width)), height=int(round(height)))


def test_anomaly_map_resamples_score_and_draws_reference():
    case = make_phantom(shape=(32, 32, 20), n_lesions=1, seed=7)
    coarse = case.lesions.replace(kind="image").resample(spacing_mm=(3.0, 3.0, 4.0), order=1)
    fig = show_anomaly_map(case.image, coarse, reference=case.lesions)
    assert fig.axes[0].images[1].get_array().shape[:2] == fig.axes[0].images[0].get_array().shape
    assert any(len(ax.collections) for ax in fig.axes[:3])  # reference contours


def test_single_channel_probability_map():
    volume = Volume.from_array(np.random.default_rng(1).normal(size=(8, 8, 8)))
    probs = Volume.from_array(np.random.default_rng(2).uniform(size=(8, 8, 8, 1)),
                              kind="probabilities")
    assert len(show_anomaly_map(volume, probs).axes) == 4
