"""Tests of medseg.demo.samples: packaged scans load through medseg.read with known geometry."""

from __future__ import annotations

import importlib.util

import numpy as np
import pydicom
import pytest

from medseg.demo import list_samples, load_sample, sample_files
from medseg.errors import InvalidArgumentError, MissingExtraError


def test_list_samples_describes_sources():
    samples = {s.name: s for s in list_samples()}
    assert set(samples) == {"chest_ct", "ct_slice_dicom", "mr_slice_dicom"}
    assert samples["chest_ct"].package == "slicerio" and "MIT" in samples["chest_ct"].licence
    assert samples["ct_slice_dicom"].available


def test_ct_slice_dicom_matches_pydicom():
    sample = load_sample("ct_slice_dicom")
    dataset = pydicom.dcmread(sample_files("ct_slice_dicom")["image"])
    assert sample.labels is None
    assert sample.image.shape == (int(dataset.Columns), int(dataset.Rows), 1)
    spacing = [float(v) for v in dataset.PixelSpacing]
    # PixelSpacing is (row spacing, column spacing); medseg's i axis runs along columns.
    assert sample.image.spacing_mm[:2] == pytest.approx((spacing[1], spacing[0]))
    hu = dataset.pixel_array.astype(float) * float(dataset.RescaleSlope) + float(
        dataset.RescaleIntercept)
    np.testing.assert_allclose(sample.image.array[:, :, 0], hu.T)
    # ImagePositionPatient is LPS; medseg stores RAS.
    lps = np.array([float(v) for v in dataset.ImagePositionPatient])
    np.testing.assert_allclose(sample.image.origin_mm, lps * [-1, -1, 1])
    assert sample.image.meta["sample"] == "ct_slice_dicom"


@pytest.mark.skipif(importlib.util.find_spec("slicerio") is None, reason="needs medseg[demo]")
def test_chest_ct_has_named_segments_on_the_image_grid():
    sample = load_sample("chest_ct")
    assert sample.image.shape == (128, 128, 34)
    assert sample.image.spacing_mm == pytest.approx((3.046875953, 3.046875953, 10.0), abs=1e-6)
    assert sample.image.same_grid(sample.labels)
    # Header says LPS origin (193.096, 216.396, -340.25): RAS flips the first two.
    np.testing.assert_allclose(sample.image.origin_mm, (-193.096, -216.396, -340.25), atol=1e-3)
    assert sample.labels.labels[1] == "ribs"
    assert set(np.unique(sample.labels.array)) <= {0, *sample.labels.labels}
    assert sample.image.array.min() < -500  # air in HU


def test_unknown_sample_names_the_choices():
    with pytest.raises(InvalidArgumentError, match="chest_ct"):
        load_sample("knee_mri")


def test_missing_package_names_the_extra(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "slicerio" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(MissingExtraError, match=r"medseg\[demo\]"):
        load_sample("chest_ct")
