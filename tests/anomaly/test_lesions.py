"""detect_lesions on hand-built probability maps: ids, sizes in mm^3, diameters, centroids, channels."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.anomaly.lesions import LESION_TABLE_COLUMNS, detect_lesions, suspicious_score
from medseg.errors import InvalidArgumentError
from medseg.volume import Volume


def _prob(spacing=(1.0, 2.0, 3.0)):
    p = np.zeros((30, 20, 10), np.float32)
    p[2:8, 2:5, 2:4] = 0.7    # 6*3*2 = 36 voxels
    p[5, 3, 3] = 0.95         # its peak
    p[20:22, 10:12, 5:6] = 0.9  # 4 voxels
    p[28, 18, 8] = 0.6        # 1 voxel
    p[15, 15, 1] = 0.3        # below threshold
    return Volume.from_array(p, spacing_mm=spacing, origin_mm=(10.0, -5.0, 2.0), kind="probabilities")


def test_instances_sizes_and_order_by_probability():
    prob = _prob()
    instances, table = detect_lesions(prob, threshold=0.5, case_id="c1")
    assert list(table.columns) == list(LESION_TABLE_COLUMNS)
    # Ordered by maximum probability: 0.95, 0.9, 0.6.
    assert table["max_probability"].tolist() == pytest.approx([0.95, 0.9, 0.6])
    assert table["n_voxels"].tolist() == [36, 4, 1]
    assert table["volume_ml"].tolist() == pytest.approx([36 * 6e-3, 4 * 6e-3, 6e-3])
    assert table["mean_probability"].iloc[0] == pytest.approx((35 * 0.7 + 0.95) / 36, rel=1e-6)
    # Diameter between the farthest voxel centres: (5, 2, 1) voxels -> (5, 4, 3) mm.
    assert table["max_diameter_mm"].iloc[0] == pytest.approx(np.sqrt(25 + 16 + 9))
    assert table["max_diameter_mm"].iloc[2] == 0.0
    # Centroid of the 2x2x1 block: voxel (20.5, 10.5, 5) -> RAS mm with the origin.
    assert table.loc[1, ["centroid_r_mm", "centroid_a_mm", "centroid_s_mm"]].tolist() == \
        pytest.approx([10 + 20.5, -5 + 21.0, 2 + 15.0])
    assert np.array_equal(np.unique(instances.array), [0, 1, 2, 3])
    assert (instances.array == 2).sum() == 4 and instances.same_grid(prob)
    assert suspicious_score(table) == pytest.approx(0.95)


def test_min_size_uses_millimetres_not_voxels():
    # Voxels are 6 mm^3: the 4-voxel lesion is 24 mm^3, the 1-voxel one 6 mm^3.
    _, table = detect_lesions(_prob(), threshold=0.5, min_size_mm3=20.0)
    assert table["n_voxels"].tolist() == [36, 4]
    _, table = detect_lesions(_prob(spacing=(1.0, 1.0, 1.0)), threshold=0.5, min_size_mm3=20.0)
    assert table["n_voxels"].tolist() == [36]


def test_two_channel_probabilities_and_empty_result():
    prob = _prob()
    two = prob.with_array(np.stack([1 - prob.array, prob.array], axis=-1))
    _, table = detect_lesions(two, threshold=0.5)
    assert len(table) == 3
    three = prob.with_array(np.stack([prob.array] * 3, axis=-1))
    with pytest.raises(InvalidArgumentError, match="channel"):
        detect_lesions(three, threshold=0.5)
    instances, table = detect_lesions(prob, threshold=0.99)
    assert len(table) == 0 and instances.array.max() == 0 and suspicious_score(table) == 0.0
