"""Shape helpers: exact diameters, perpendicular chords, equivalent-ellipsoid axes."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.measure import axial_diameters_mm, max_diameter_mm, principal_axes_mm
from medseg.measure.shape import longest_chord_perpendicular


def test_max_diameter_is_exact_on_random_points():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(400, 3)) * [10, 4, 2]
    brute = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1)).max()
    assert max_diameter_mm(points) == pytest.approx(brute, rel=1e-12)
    assert max_diameter_mm(np.zeros((1, 3))) == 0.0
    flat = np.c_[rng.normal(size=(50, 2)), np.zeros(50)]  # coplanar: qhull fails, brute force answers
    assert max_diameter_mm(flat) == pytest.approx(np.sqrt(((flat[:, None] - flat[None]) ** 2).sum(-1)).max())


def test_perpendicular_chord_of_a_rotated_rectangle():
    angle = 0.3
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    rectangle = np.array([[0, 0], [8, 0], [8, 3], [0, 3], [0, 0]], float) @ rotation.T
    a, b = np.array([0.0, 0.0]) @ rotation.T, np.array([8.0, 0.0]) @ rotation.T
    assert longest_chord_perpendicular([rectangle], a, b) == pytest.approx(3.0)


def test_axial_diameters_of_a_disc_stack():
    yy, xx = np.mgrid[:41, :41]
    disc = (xx - 20) ** 2 + ((yy - 20) * 2) ** 2 <= 18**2  # ellipse: semi-axes 9 (i) and 18 (j)
    mask = np.repeat(disc[:, :, None], 3, axis=2)
    result = axial_diameters_mm(mask, np.diag([0.5, 0.5]))
    assert result["axial_long_mm"] == pytest.approx(18.0, abs=0.5)
    assert result["axial_short_mm"] == pytest.approx(9.0, abs=0.5)


def test_principal_axes_of_a_voxelised_ellipsoid():
    grid = np.indices((41, 31, 21)).reshape(3, -1).T
    inside = (((grid - [20, 15, 10]) / [20, 12, 8]) ** 2).sum(1) <= 1
    axes = principal_axes_mm(grid[inside], np.diag([0.5, 1.0, 2.0, 1.0]))
    np.testing.assert_allclose(axes, [32.0, 24.0, 20.0], rtol=0.03)  # 2 x (16, 12, 10) mm
