"""Affine helpers against nibabel's orientation code."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest

from medseg import geometry


def _rotation(angles):
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rx @ ry @ rz


@pytest.mark.parametrize("perm", list(itertools.permutations(range(3))))
@pytest.mark.parametrize("signs", [(1, 1, 1), (-1, -1, 1), (1, -1, -1), (-1, 1, -1)])
def test_axis_codes_match_nibabel_on_permuted_flipped_oblique(perm, signs):
    rng = np.random.default_rng(hash((perm, signs)) % 2**32)
    direction = np.eye(3)[:, list(perm)] * np.array(signs)[None, :]
    direction = _rotation(rng.uniform(-0.3, 0.3, 3)) @ direction
    affine = geometry.affine_from_spacing((0.7, 0.9, 2.5), origin_mm=(3, -4, 5), direction=direction)
    assert geometry.axis_codes(affine) == nib.aff2axcodes(affine)


def test_spacing_and_direction_roundtrip():
    direction = _rotation((0.2, -0.1, 0.4))
    affine = geometry.affine_from_spacing((0.7, 0.7, 2.5), origin_mm=(1, 2, 3), direction=direction)
    assert geometry.spacing_from_affine(affine) == pytest.approx((0.7, 0.7, 2.5), abs=1e-9)
    np.testing.assert_allclose(geometry.direction_from_affine(affine), direction, atol=1e-12)


def test_orientation_transform_makes_ras():
    affine = geometry.affine_from_spacing((1, 2, 3), direction=np.array([[0, 0, -1], [-1, 0, 0], [0, 1, 0]]))
    perm, flips = geometry.orientation_transform(affine, "RAS")
    new_direction = geometry.direction_from_affine(affine)[:, list(perm)] * np.where(flips, -1, 1)
    np.testing.assert_allclose(new_direction, np.eye(3), atol=1e-12)


def test_bad_orientation_code():
    with pytest.raises(ValueError, match="three letters"):
        geometry.orientation_transform(np.eye(4), "RAX")
    with pytest.raises(ValueError, match="twice"):
        geometry.orientation_transform(np.eye(4), "RLS")
