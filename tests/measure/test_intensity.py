"""Intensity statistics and unit naming."""

from __future__ import annotations

import numpy as np
import pytest

from medseg import Volume
from medseg.measure import intensity_stats, intensity_unit


def test_stats_match_numpy():
    values = np.random.default_rng(2).normal(40, 10, 1000)
    stats = intensity_stats(values, "hu")
    assert stats["mean_hu"] == pytest.approx(values.mean())
    assert stats["std_hu"] == pytest.approx(values.std())
    for p in (5, 25, 75, 95):
        assert stats[f"p{p}_hu"] == pytest.approx(np.percentile(values, p))
    assert all(np.isnan(v) for v in intensity_stats(np.array([]), "hu").values())


def test_unit_from_metadata():
    ct = Volume.from_array(np.zeros((2, 2, 2)), meta={"dicom": {"Modality": "CT"}})
    assert intensity_unit(ct) == "hu"
    assert intensity_unit(Volume.from_array(np.zeros((2, 2, 2)))) == "intensity"
