"""The z-score baseline against hand-computed per-voxel statistics; resampling of other grids."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.anomaly.baseline import ZScoreBaseline
from medseg.errors import InvalidArgumentError
from medseg.volume import Volume


def _normals():
    base = np.full((12, 12, 12), 50.0, np.float32)
    base[[0, -1]] = -1000.0  # air slabs outside the body
    offsets = [-20.0, 0.0, 20.0]  # mean 0, sample std (ddof=1) 20
    return [Volume.from_array(base + o * (base > -500), spacing_mm=(2.0, 2.0, 2.0)) for o in offsets]


def test_z_is_distance_from_the_mean_in_standard_deviations():
    normals = _normals()
    baseline = ZScoreBaseline(erode_mm=0.0, smoothing_mm=0.0, std_floor=1.0).fit(normals)
    assert baseline.mean[5, 5, 5] == pytest.approx(50.0) and baseline.std[5, 5, 5] == pytest.approx(20.0)
    test = normals[1].array.copy()
    test[4:7, 4:7, 4:7] = 50.0 + 3 * 20.0  # three standard deviations brighter
    result = baseline.score(normals[1].with_array(test))
    assert result.anomaly_map.array[5, 5, 5] == pytest.approx(3.0)
    assert result.anomaly_map.array[9, 9, 9] == pytest.approx(0.0)
    assert result.anomaly_map.array[0].max() == 0.0  # air is outside the body mask
    assert result.case_score == pytest.approx(3.0)
    # Where every scan agrees the floor keeps z finite: air has std 0 -> floor 1.
    assert baseline.std[0, 0, 0] == 1.0


def test_threshold_from_validation_scans_and_other_grids_are_resampled():
    normals = _normals()
    baseline = ZScoreBaseline(erode_mm=0.0, smoothing_mm=0.0).fit(normals, val=normals[1:2],
                                                                 target_fpr=0.01)
    assert baseline.threshold == pytest.approx(0.0)  # the validation scan equals the mean
    fine = normals[1].resample(spacing_mm=(1.0, 1.0, 1.0), order=1)
    result = baseline.score(fine)
    assert result.anomaly_map.shape == fine.shape and result.anomaly_map.same_grid(fine)
    assert result.mask.same_grid(fine)
    with pytest.raises(InvalidArgumentError, match="at least 2"):
        ZScoreBaseline().fit(normals[:1])
    with pytest.raises(InvalidArgumentError, match="before fit"):
        ZScoreBaseline().score(normals[0])
