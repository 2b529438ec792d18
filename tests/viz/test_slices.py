"""Tests of medseg.viz.slices: radiological orientation, mm proportions, overlays, legends."""

from __future__ import annotations

import numpy as np
import pytest

from medseg import Volume
from medseg.demo import make_phantom
from medseg.errors import VisualizationError
from medseg.viz import montage, plane_image, save_figure, show_slices


def _axes_ratio(ax) -> float:
    box = ax.get_window_extent()
    return box.height / box.width


def test_show_slices_aspect_follows_anisotropic_spacing():
    # 40 x 30 x 20 voxels of 0.5 x 1.0 x 3.0 mm: 20 x 30 x 60 mm field of view.
    volume = Volume.from_array(np.random.default_rng(0).normal(size=(40, 30, 20)),
                               spacing_mm=(0.5, 1.0, 3.0))
    fig = show_slices(volume)
    fig.canvas.draw()
    axial, coronal, sagittal = fig.axes
    # height/width in mm: axial A-P 30 over R-L 20; coronal S-I 60 over 20; sagittal 60 over 30.
    assert _axes_ratio(axial) == pytest.approx(30 / 20, rel=0.02)
    assert _axes_ratio(coronal) == pytest.approx(60 / 20, rel=0.02)
    assert _axes_ratio(sagittal) == pytest.approx(60 / 30, rel=0.02)


def test_plane_image_is_radiological():
    # One bright voxel at the right-anterior-superior corner of a RAS array.
    array = np.zeros((5, 6, 7))
    array[4, 5, 6] = 1.0
    spacing = (1.0, 2.0, 3.0)
    axial, axial_mm = plane_image(array, "axial", 6, spacing)
    coronal, coronal_mm = plane_image(array, "coronal", 5, spacing)
    sagittal, sagittal_mm = plane_image(array, "sagittal", 4, spacing)
    # Axial: anterior at the top, patient's right on the viewer's left.
    assert axial.shape == (6, 5) and axial_mm == (2.0, 1.0)
    assert np.argwhere(axial).tolist() == [[0, 0]]
    # Coronal: superior at the top, right on the left.
    assert coronal.shape == (7, 5) and coronal_mm == (3.0, 1.0)
    assert np.argwhere(coronal).tolist() == [[0, 0]]
    # Sagittal: superior at the top, anterior on the left.
    assert sagittal.shape == (7, 6) and sagittal_mm == (3.0, 2.0)
    assert np.argwhere(sagittal).tolist() == [[0, 0]]


def test_stored_orientation_does_not_change_the_picture():
    case = make_phantom(shape=(20, 18, 12), spacing_mm=(1.5, 1.5, 3.0), seed=4)
    lps = case.image.reorient("LPI")
    labels_lps = case.labels.reorient("LPI")
    assert lps.orientation == "LPI"
    ras_fig = show_slices(case.image, case.labels)
    lps_fig = show_slices(lps, labels_lps)
    for ras_ax, lps_ax in zip(ras_fig.axes, lps_fig.axes):
        for ras_img, lps_img in zip(ras_ax.images, lps_ax.images):
            np.testing.assert_array_equal(ras_img.get_array(), lps_img.get_array())


def test_crosshair_at_centre_mm():
    volume = Volume.from_array(np.zeros((10, 10, 10)), spacing_mm=(2.0, 2.0, 2.0),
                               origin_mm=(-10.0, 0.0, 0.0))
    fig = show_slices(volume, centre_mm=(-4.0, 6.0, 14.0))  # voxel (3, 3, 7)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["axial (k=7)", "coronal (j=3)", "sagittal (i=3)"]


def test_overlays_rows_legend_and_png(tmp_path, check_png):
    case = make_phantom(shape=(32, 32, 24), spacing_mm=(1.5, 1.5, 2.5), seed=1)
    prediction = case.labels.with_array(np.where(case.labels.array == 2, 0, case.labels.array))
    fig = show_slices(case.image, case.labels, prediction=prediction, title="case 1")
    assert len(fig.axes) == 6
    assert [ax.get_ylabel() for ax in fig.axes[::3]] == ["reference", "prediction"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["1: liver", "2: spleen", "3: kidney"]
    # The prediction row has no spleen colour: its overlay differs from the reference row.
    reference_rgba = fig.axes[0].images[1].get_array()
    predicted_rgba = fig.axes[3].images[1].get_array()
    assert not np.array_equal(reference_rgba, predicted_rgba)
    width, height = fig.get_size_inches() * 50
    path = save_figure(fig, tmp_path / "slices.png", dpi=50)
    check_png(path, width=int(round(width)), height=int(round(height)))


def test_overlay_on_another_grid_is_resampled():
    case = make_phantom(shape=(24, 24, 16), spacing_mm=(1.5, 1.5, 3.0), seed=2)
    coarse = case.labels.resample(spacing_mm=(3.0, 3.0, 6.0), order=0)
    fig = show_slices(case.image, coarse)
    overlay = fig.axes[0].images[1].get_array()
    base = fig.axes[0].images[0].get_array()
    assert overlay.shape[:2] == base.shape


def test_montage_spans_labelled_slices():
    case = make_phantom(shape=(24, 24, 20), seed=3)
    fig = montage(case.image, case.labels, plane="coronal", n_slices=6, ncols=3)
    assert len(fig.axes) == 6
    shown = [int(t.get_text().split("=")[1]) for ax in fig.axes for t in ax.texts]
    hit = np.flatnonzero(np.any(case.labels.array > 0, axis=(0, 2)))
    assert shown[0] == hit[0] and shown[-1] == hit[-1]


def test_bad_inputs_raise_visualization_error():
    with pytest.raises(VisualizationError, match="expected a medseg.Volume"):
        show_slices(np.zeros((4, 4, 4)))
    volume = Volume.from_array(np.zeros((4, 4, 4)))
    with pytest.raises(VisualizationError, match="unknown plane"):
        montage(volume, plane="oblique")
    with pytest.raises(VisualizationError, match="channel 2"):
        show_slices(Volume.from_array(np.zeros((4, 4, 4, 2))), channel=2)
