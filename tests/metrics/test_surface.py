"""Surface distances against analytic answers, surface-distance (surfels) and MONAI (voxel shells)."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import surface_distance as sd
from scipy import ndimage
from surface_distance import lookup_tables

from medseg.demo import make_phantom
from medseg.errors import InvalidArgumentError
from medseg.metrics import surface as surface_module
from medseg.metrics import surface_distances, surface_metrics
from medseg.metrics.surface import surfel_area_table

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SPACINGS = [(0.7, 0.7, 2.5), (1.0, 2.0, 0.5), (1.5, 1.5, 2.0)]


def _blobs(seed: int, shape=(40, 44, 30)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = ndimage.gaussian_filter(rng.random(shape), 3) > 0.5
    b = ndimage.gaussian_filter(rng.random(shape), 3) > 0.5
    return a, b


def _phantom_pair(seed: int, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Phantom organ masks and a perturbed copy (dilated, eroded, shifted, with a speck)."""
    case = make_phantom(shape=(48, 48, 40), spacing_mm=spacing, seed=seed)
    ref = case.labels.array == 1
    pred = ndimage.binary_dilation(ref, iterations=1)
    pred = np.roll(pred, 2, axis=1)
    pred[5:7, 5:7, 5:7] = True  # a far false positive drives HD
    return pred, ref


@functools.cache
def _case(index: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Even index: random blobs; odd: phantom liver vs perturbed copy; spacing by index // 2."""
    seed, spacing = index // 2, SPACINGS[index // 2]
    return (*(_blobs(seed) if index % 2 == 0 else _phantom_pair(seed, spacing)), spacing)


@pytest.mark.parametrize("spacing", SPACINGS + [(0.6, 2.2)])
def test_surfel_table_matches_surface_distance(spacing):
    ours = surfel_area_table(spacing)
    if len(spacing) == 3:
        theirs = lookup_tables.create_table_neighbour_code_to_surface_area(spacing)
    else:
        theirs = lookup_tables.create_table_neighbour_code_to_contour_length(spacing)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)


@pytest.mark.parametrize("index", range(6))
def test_surfels_match_surface_distance(index):
    pred, ref, spacing = _case(index)
    theirs = sd.compute_surface_distances(ref, pred, spacing)
    ours = surface_metrics(surface_distances(pred, ref, spacing_mm=spacing), nsd_tolerance_mm=[1.0, 2.0])
    mean_ref, mean_pred = sd.compute_average_surface_distance(theirs)
    expected = {
        "hd_mm": sd.compute_robust_hausdorff(theirs, 100),
        "hd95_mm": sd.compute_robust_hausdorff(theirs, 95),
        "msd_ref_to_pred_mm": mean_ref,
        "msd_pred_to_ref_mm": mean_pred,
        "nsd_1mm": sd.compute_surface_dice_at_tolerance(theirs, 1.0),
        "nsd_2mm": sd.compute_surface_dice_at_tolerance(theirs, 2.0),
    }
    # Pooled ASSD from the library's own distances and areas.
    areas = np.concatenate([theirs["surfel_areas_gt"], theirs["surfel_areas_pred"]])
    dists = np.concatenate([theirs["distances_gt_to_pred"], theirs["distances_pred_to_gt"]])
    expected["assd_mm"] = float(np.sum(areas * dists) / np.sum(areas))
    for key, value in expected.items():
        assert ours[key] == pytest.approx(float(value), rel=1e-6, abs=1e-9), key


def _monai(pred: np.ndarray, ref: np.ndarray, spacing, **kwargs):
    torch = pytest.importorskip("torch")
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    y_pred = torch.from_numpy(pred[None, None].astype(np.float32))
    y = torch.from_numpy(ref[None, None].astype(np.float32))
    common = {"include_background": True, "spacing": list(spacing)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "hd_mm": float(compute_hausdorff_distance(y_pred, y, **common)),
            "hd95_mm": float(compute_hausdorff_distance(y_pred, y, percentile=95, **common)),
            "assd_mm": float(compute_average_surface_distance(y_pred, y, symmetric=True, **common)),
            "nsd_1mm": float(compute_surface_dice(y_pred, y, [1.0], **common)),
            "nsd_1mm_surfel": float(compute_surface_dice(y_pred, y, [1.0], use_subvoxels=True, **common)),
        }


@pytest.mark.parametrize("index", [1, 2, 5])
def test_voxel_shell_matches_monai(index):
    pred, ref, spacing = _case(index)
    theirs = _monai(pred, ref, spacing)
    ours = surface_metrics(surface_distances(pred, ref, spacing_mm=spacing, surface="voxel"))
    surfel = surface_metrics(surface_distances(pred, ref, spacing_mm=spacing, surface="surfel"))
    # MONAI computes in float32: agreement to its precision.
    for key in ("hd_mm", "hd95_mm", "assd_mm", "nsd_1mm"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-6), key
    assert surfel["nsd_1mm"] == pytest.approx(theirs["nsd_1mm_surfel"], rel=1e-6)


def test_definitions_differ_between_surfaces_by_design():
    """Surfels (area-weighted corners) and voxel shells (unweighted voxel centres) differ.

    With 2.5 mm slices a voxel shell counts each slab face with the weight of one voxel
    while surfels weight it by its area, so ASSD and NSD differ; HD of a pure shift
    along the slice axis is the same for both.
    """
    pred, ref = _phantom_pair(0, (0.7, 0.7, 2.5))
    surfel = surface_metrics(surface_distances(pred, ref, spacing_mm=(0.7, 0.7, 2.5)))
    voxel = surface_metrics(surface_distances(pred, ref, spacing_mm=(0.7, 0.7, 2.5), surface="voxel"))
    assert abs(surfel["assd_mm"] - voxel["assd_mm"]) > 0.01
    assert abs(surfel["nsd_1mm"] - voxel["nsd_1mm"]) > 0.01
    box = np.zeros((20, 20, 20), bool)
    box[5:12, 4:14, 6:10] = True
    shifted = np.roll(box, 2, axis=2)
    for kind in ("surfel", "voxel"):
        d = surface_metrics(surface_distances(shifted, box, spacing_mm=(0.7, 0.7, 2.5), surface=kind))
        assert d["hd_mm"] == pytest.approx(5.0)


@pytest.mark.parametrize("surface", ["surfel", "voxel"])
@pytest.mark.parametrize(("shift", "spacing", "expected"), [
    ((3, 0, 0), (0.7, 0.7, 2.5), 2.1),
    ((0, 0, 2), (0.7, 0.7, 2.5), 5.0),
    ((2, 0, 1), (0.7, 0.9, 2.5), float(np.hypot(1.4, 2.5))),
])
def test_shifted_box_hausdorff_is_the_shift(surface, shift, spacing, expected):
    box = np.zeros((24, 24, 16), bool)
    box[6:14, 5:15, 4:9] = True
    moved = np.roll(box, shift, axis=(0, 1, 2))
    metrics = surface_metrics(surface_distances(moved, box, spacing_mm=spacing, surface=surface))
    assert metrics["hd_mm"] == pytest.approx(expected, rel=1e-12)


def test_concentric_spheres_distance_is_radius_difference():
    spacing = np.array([0.8, 0.8, 1.6])
    shape = (70, 70, 36)
    grid = np.stack(np.indices(shape), -1) * spacing
    r = np.linalg.norm(grid - (np.array(shape) - 1) / 2 * spacing, axis=-1)
    inner, outer = r <= 15.0, r <= 20.0
    # Each staircase surface lies within half a voxel diagonal of its sphere.
    half_diagonal = float(np.linalg.norm(spacing)) / 2
    for surface in ("surfel", "voxel"):
        m = surface_metrics(surface_distances(outer, inner, spacing_mm=spacing, surface=surface))
        for key in ("assd_mm", "hd95_mm", "hd_mm", "msd_ref_to_pred_mm", "msd_pred_to_ref_mm"):
            assert m[key] == pytest.approx(5.0, abs=half_diagonal), key
        assert m["nsd_1mm"] == 0.0  # no point of one surface is within 1 mm of the other


def test_two_d_masks_match_surface_distance():
    a, b = _blobs(7, shape=(60, 50))
    theirs = sd.compute_surface_distances(b, a, (0.6, 1.3))
    ours = surface_metrics(surface_distances(a, b, spacing_mm=(0.6, 1.3)))
    assert ours["hd95_mm"] == pytest.approx(sd.compute_robust_hausdorff(theirs, 95), rel=1e-9)
    assert ours["nsd_1mm"] == pytest.approx(sd.compute_surface_dice_at_tolerance(theirs, 1.0), rel=1e-9)


def test_single_voxel_objects():
    a = np.zeros((5, 5, 5), bool)
    b = a.copy()
    a[1, 1, 1] = True
    b[3, 1, 1] = True
    for surface in ("surfel", "voxel"):
        m = surface_metrics(surface_distances(a, b, spacing_mm=(2.0, 1.0, 1.0), surface=surface))
        assert m["hd_mm"] == pytest.approx(4.0)
        assert m["nsd_1mm"] == 0.0
    same = surface_metrics(surface_distances(a, a, spacing_mm=(2.0, 1.0, 1.0)))
    assert same["hd_mm"] == 0.0 and same["nsd_1mm"] == 1.0


def test_edge_touching_objects_count_the_edge_face():
    """An object cut by the array edge is closed there, as scipy-based libraries do."""
    ref = np.zeros((10, 10, 10), bool)
    ref[:4, 2:8, 2:8] = True
    pred = ref.copy()
    pred[:5] = pred[:5] | ref[:5]
    pred[4, 2:8, 2:8] = True
    theirs = sd.compute_surface_distances(ref, pred, (1.0, 1.0, 1.0))
    ours = surface_metrics(surface_distances(pred, ref, spacing_mm=(1.0, 1.0, 1.0)))
    assert ours["hd95_mm"] == pytest.approx(sd.compute_robust_hausdorff(theirs, 95))
    assert ours["hd_mm"] == pytest.approx(1.0)


def test_empty_masks_give_nan_not_inf():
    a = np.zeros((6, 6, 6), bool)
    b = a.copy()
    b[2:4, 2:4, 2:4] = True
    for pred, ref in ((a, b), (b, a), (a, a)):
        m = surface_metrics(surface_distances(pred, ref, spacing_mm=(1, 1, 1)))
        assert all(np.isnan(v) for v in m.values())


def test_far_points_use_the_tree_and_stay_exact(monkeypatch):
    """Distances beyond the scanned radius come from the k-d tree; both paths agree."""
    pred, ref, spacing = _case(1)
    full = surface_distances(pred, ref, spacing_mm=spacing)
    monkeypatch.setattr(surface_module, "_SCAN_BUDGET", 0)
    tree_only = surface_distances(pred, ref, spacing_mm=spacing)
    np.testing.assert_allclose(full.ref_to_pred_mm, tree_only.ref_to_pred_mm, rtol=1e-12)
    np.testing.assert_allclose(full.pred_to_ref_mm, tree_only.pred_to_ref_mm, rtol=1e-12)


def test_spacing_is_required_and_checked():
    mask = np.ones((3, 3, 3), bool)
    with pytest.raises(InvalidArgumentError, match="spacing_mm"):
        surface_distances(mask, mask, spacing_mm=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="3 positive"):
        surface_distances(mask, mask, spacing_mm=(1.0, 1.0))
    with pytest.raises(InvalidArgumentError, match="surface"):
        surface_distances(mask, mask, spacing_mm=(1, 1, 1), surface="mesh")  # type: ignore[arg-type]


def test_strong_anisotropy_with_far_outliers_matches_surface_distance():
    """0.3 x 0.3 x 5 mm voxels and a distant false positive: scan and tree both in play."""
    ref, pred = _blobs(11, shape=(60, 60, 12))
    pred = pred.copy()
    pred[55:58, 2:4, 10:12] = True
    theirs = sd.compute_surface_distances(ref, pred, (0.3, 0.3, 5.0))
    ours = surface_metrics(surface_distances(pred, ref, spacing_mm=(0.3, 0.3, 5.0)))
    assert ours["hd_mm"] == pytest.approx(sd.compute_robust_hausdorff(theirs, 100), rel=1e-9)
    assert ours["hd95_mm"] == pytest.approx(sd.compute_robust_hausdorff(theirs, 95), rel=1e-9)
    assert ours["nsd_1mm"] == pytest.approx(sd.compute_surface_dice_at_tolerance(theirs, 1.0), rel=1e-9)


def test_hd95_is_the_larger_directed_percentile_not_the_pooled_one():
    """medpy pools both directions before the percentile; we (and MONAI, surface-distance) do not."""
    ref = np.zeros((40, 40, 40), bool)
    ref[5:15, 5:15, 5:15] = True
    pred = ref.copy()
    pred[30:34, 30:34, 30:33] = True  # 44 shell voxels: 8% of pred's surface, 4% of both pooled
    d = surface_distances(pred, ref, spacing_mm=(1, 1, 1), surface="voxel")
    ours = surface_metrics(d)["hd95_mm"]
    directed = max(np.percentile(d.ref_to_pred_mm, 95), np.percentile(d.pred_to_ref_mm, 95))
    pooled = np.percentile(np.concatenate([d.ref_to_pred_mm, d.pred_to_ref_mm]), 95)
    assert ours == pytest.approx(directed)
    assert ours > pooled + 1.0
