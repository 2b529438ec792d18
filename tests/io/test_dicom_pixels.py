"""Tests of medseg.io.dicom_pixels: rescale dtype rules and per-frame rescale values."""

from __future__ import annotations

import numpy as np

from medseg import Volume
from medseg.io import read_dicom_series
from medseg.io.dicom_pixels import apply_rescale
from medseg.io.dicom_write import write_dicom_series


def test_integral_rescale_gives_int16_in_place():
    raw = np.array([[[0, 1024, 4095]], [[10, 20, 30]]], dtype=np.uint16)
    out = apply_rescale(raw, [1.0, 1.0], [-1024.0, -1024.0])
    assert out.dtype == np.int16 and np.shares_memory(out, raw)
    np.testing.assert_array_equal(out, [[[-1024, 0, 3071]], [[-1014, -1004, -994]]])


def test_per_frame_intercepts_and_overflow_to_int32():
    raw = np.array([[[0, 100]], [[0, 100]]], dtype=np.int16)
    np.testing.assert_array_equal(apply_rescale(raw.copy(), [1, 1], [-1000, 5]), [[[-1000, -900]], [[5, 105]]])
    big = np.array([[[0, 65535]]], dtype=np.uint16)
    out = apply_rescale(big, [1.0], [-1024.0])
    assert out.dtype == np.int32 and out.ravel().tolist() == [-1024, 64511]


def test_fractional_slope_gives_float32():
    raw = np.array([[[0, 3, 8]], [[1, 2, 3]]], dtype=np.int16)
    out = apply_rescale(raw, [0.25, 2.0], [0.5, -1.0])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[[0.5, 1.25, 2.5]], [[1.0, 3.0, 5.0]]])


def test_series_with_fractional_slope_reads_float(tmp_path):
    array = np.linspace(-3.0, 900.0, 4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    volume = Volume.from_array(array, spacing_mm=(0.5, 0.5, 1.5))
    write_dicom_series(volume, tmp_path, modality="PT", rescale_slope=0.5, rescale_intercept=0.0)
    back = read_dicom_series(tmp_path)
    assert back.array.dtype == np.float32
    np.testing.assert_allclose(back.array, np.rint(array / 0.5) * 0.5)
