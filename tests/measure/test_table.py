"""measure(): analytic spheres, ellipsoids and boxes at anisotropic spacing, RAS geometry, intensities."""

from __future__ import annotations

import numpy as np
import pytest

from medseg import Volume
from medseg.demo import make_phantom
from medseg.errors import GeometryMismatchError, InvalidArgumentError
from medseg.measure import measure


def _ellipsoid(semi_axes_mm, spacing_mm, *, centre_mm=(0.0, 0.0, 0.0), margin=3, rotation=None,
               direction=None):
    spacing = np.asarray(spacing_mm, float)
    reach = max(semi_axes_mm)
    shape = tuple(int(np.ceil(2 * reach / s)) + 2 * margin for s in spacing)
    rotation_matrix = np.eye(3) if direction is None else np.asarray(direction, float)
    origin = np.asarray(centre_mm) - rotation_matrix @ ((np.asarray(shape) - 1) / 2 * spacing)
    volume = Volume.from_array(np.zeros(shape, np.uint8), spacing_mm=spacing, origin_mm=origin,
                               direction=direction, kind="labels", labels={1: "lesion"})
    index = np.stack(np.indices(shape), -1).reshape(-1, 3)
    points = volume.index_to_ras_mm(index) - np.asarray(centre_mm)
    if rotation is not None:
        points = points @ rotation
    inside = np.sum((points / np.asarray(semi_axes_mm)) ** 2, axis=1) <= 1.0
    return volume.with_array(inside.reshape(shape).astype(np.uint8))


def test_sphere_at_anisotropic_spacing():
    radius = 12.0
    row = measure(_ellipsoid((radius,) * 3, (0.8, 0.8, 2.0))).iloc[0]
    exact_volume_ml = 4 / 3 * np.pi * radius**3 / 1000
    # Voxel counting: the error is bounded by the partial voxels along the surface.
    assert row["volume_ml"] == pytest.approx(exact_volume_ml, rel=0.03)
    assert row["volume_mesh_ml"] == pytest.approx(exact_volume_ml, rel=0.03)
    # Marching cubes on a binary mask keeps the staircase: area above the smooth sphere's.
    area = 4 * np.pi * radius**2
    assert area < row["surface_area_mm2"] < 1.25 * area
    assert 0.75 < row["sphericity"] < 1.0
    # Diameters: mesh vertices sit on voxel faces, within half a voxel of the sphere.
    assert row["max_diameter_mm"] == pytest.approx(2 * radius, abs=2.0)
    assert row["axial_long_mm"] == pytest.approx(2 * radius, abs=0.8)
    assert row["axial_short_mm"] == pytest.approx(2 * radius, abs=0.8)
    for axis in ("major", "mid", "minor"):
        assert row[f"principal_axis_{axis}_mm"] == pytest.approx(2 * radius, rel=0.03)
    for name in "xyz":
        assert row[f"centroid_{name}_mm"] == pytest.approx(0.0, abs=1e-6)
    assert not row["touches_border"] and row["n_components"] == 1


def test_box_volume_bbox_and_axes_are_exact():
    array = np.zeros((30, 30, 12), np.uint8)
    array[5:25, 10:16, 2:10] = 3  # 20 x 6 x 8 voxels
    labels = Volume.from_array(array, spacing_mm=(0.5, 1.0, 2.5), origin_mm=(10, 20, 30), kind="labels")
    row = measure(labels).iloc[0]
    assert row["label"] == 3 and row["n_voxels"] == 960
    assert row["volume_ml"] == pytest.approx(960 * 1.25 / 1000)
    assert row["bbox_min_x_mm"] == pytest.approx(10 + 4.5 * 0.5)
    assert row["bbox_max_x_mm"] == pytest.approx(10 + 24.5 * 0.5)
    assert row["bbox_min_z_mm"] == pytest.approx(30 + 1.5 * 2.5)
    assert row["bbox_max_z_mm"] == pytest.approx(30 + 9.5 * 2.5)
    # A uniform box of sides a has second moment a^2/12: the equivalent ellipsoid axis is a*sqrt(5/3).
    sides = sorted([20 * 0.5, 6 * 1.0, 8 * 2.5], reverse=True)
    axes = [row["principal_axis_major_mm"], row["principal_axis_mid_mm"], row["principal_axis_minor_mm"]]
    np.testing.assert_allclose(axes, np.asarray(sides) * np.sqrt(5 / 3), rtol=1e-9)
    assert row["centroid_y_mm"] == pytest.approx(20 + 12.5 * 1.0)


def test_ellipsoid_diameters_and_recist_axes():
    # Semi-axes 15 (x), 8 (y), 10 (z) mm; in-plane axes 30 and 16 mm, 3D max 30 mm.
    volume = _ellipsoid((15.0, 8.0, 10.0), (0.6, 0.6, 1.5))
    row = measure(volume).iloc[0]
    assert row["max_diameter_mm"] == pytest.approx(30.0, abs=0.8)
    assert row["axial_long_mm"] == pytest.approx(30.0, abs=0.6)
    assert row["axial_short_mm"] == pytest.approx(16.0, abs=0.6)
    assert row["principal_axis_major_mm"] == pytest.approx(30.0, rel=0.03)
    assert row["principal_axis_minor_mm"] == pytest.approx(16.0, rel=0.03)


def test_axial_plane_follows_ras_not_the_k_axis():
    """A sagittal acquisition (k along x): axial diameters are still measured in the x-y plane."""
    direction = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # i->A, j->S, k->R
    sagittal = _ellipsoid((15.0, 8.0, 10.0), (0.7, 0.7, 0.7), direction=direction)
    axial = _ellipsoid((15.0, 8.0, 10.0), (0.7, 0.7, 0.7))
    a, b = measure(sagittal).iloc[0], measure(axial).iloc[0]
    assert a["axial_long_mm"] == pytest.approx(b["axial_long_mm"], abs=1e-6)
    assert a["axial_short_mm"] == pytest.approx(b["axial_short_mm"], abs=1e-6)
    assert a["axial_long_mm"] == pytest.approx(30.0, abs=0.8)
    assert a["axial_z_mm"] == pytest.approx(b["axial_z_mm"], abs=1e-6)
    assert abs(a["axial_z_mm"]) < 0.8  # the widest axial section passes through the centre


def test_oblique_grid_is_resampled_to_axial():
    angle = np.deg2rad(30)
    direction = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    tilted = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    row = measure(_ellipsoid((14.0, 7.0, 9.0), (0.6, 0.6, 0.6), direction=tilted @ direction)).iloc[0]
    assert row["axial_long_mm"] == pytest.approx(28.0, abs=1.2)
    assert row["volume_ml"] == pytest.approx(4 / 3 * np.pi * 14 * 7 * 9 / 1000, rel=0.03)


def test_per_component_and_border_flag():
    array = np.zeros((20, 20, 20), np.uint8)
    array[0:4, 2:6, 2:6] = 1      # touches the i=0 face, 64 voxels
    array[10:16, 10:16, 10:16] = 1  # 216 voxels
    labels = Volume.from_array(array, spacing_mm=(1, 1, 1), kind="labels", labels={1: "nodule"})
    per_label = measure(labels)
    assert len(per_label) == 1 and per_label.iloc[0]["n_components"] == 2
    assert per_label.iloc[0]["touches_border"]
    parts = measure(labels, per_component=True, case_id="c7")
    assert parts["component"].tolist() == [1, 2] and parts["n_voxels"].tolist() == [216, 64]
    assert parts["touches_border"].tolist() == [False, True]
    assert (parts["case_id"] == "c7").all() and (parts["label_name"] == "nodule").all()


def test_intensity_statistics_in_hounsfield_units():
    case = make_phantom(shape=(32, 32, 32), seed=5)
    table = measure(case.labels, case.image)
    liver = table[table["label_name"] == "liver"].iloc[0]
    values = case.image.array[case.labels.array == 1]
    assert liver["mean_hu"] == pytest.approx(values.mean(), rel=1e-6)
    assert liver["p95_hu"] == pytest.approx(np.percentile(values, 95), rel=1e-6)
    assert liver["min_hu"] == pytest.approx(values.min())
    assert 40 < liver["median_hu"] < 100  # phantom liver is about 70 HU
    mr = case.image.replace(meta={"modality": "MR"})
    assert "mean_intensity" in measure(case.labels, mr).columns


def test_single_voxel_and_empty_inputs():
    array = np.zeros((5, 5, 5), np.uint8)
    labels = Volume.from_array(array, spacing_mm=(1, 1, 1), kind="labels")
    assert measure(labels).empty
    array[2, 2, 2] = 1
    row = measure(labels.with_array(array)).iloc[0]
    assert row["volume_ml"] == 0.001 and row["max_diameter_mm"] > 0


def test_validation():
    case = make_phantom(shape=(16, 16, 16), seed=0)
    with pytest.raises(InvalidArgumentError, match="Volume.from_array"):
        measure(case.labels.array)  # type: ignore[arg-type]
    shifted = case.image.replace(affine=case.image.affine @ np.diag([2.0, 1, 1, 1]))
    with pytest.raises(GeometryMismatchError):
        measure(case.labels, shifted)
