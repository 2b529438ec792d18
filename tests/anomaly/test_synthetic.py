"""The synthetic benchmark: lesions land in organs with the requested kind, size and mean intensity."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.anomaly.synthetic import insert_lesions, make_anomaly_benchmark, make_lesion_case
from medseg.demo import make_phantom
from medseg.errors import InvalidArgumentError


def test_lesion_kinds_change_mean_or_texture_as_specified(caplog):
    phantom = make_phantom(shape=(48, 48, 40), spacing_mm=(2.0, 2.0, 2.5), seed=4)
    kinds = ["hypo", "hyper", "texture", "ring"]
    image, instances, table = insert_lesions(
        phantom.image, phantom.labels, radii_mm=[6.0] * 4, contrasts_hu=[40.0] * 4, kinds=kinds,
        seed=1, host_labels=(1,), lobulation=0.0)
    assert "overlaps" not in caplog.text
    assert table["kind"].tolist() == kinds and set(table["host_label"]) == {1}
    before, after = phantom.image.array, image.array
    for lesion_id, kind in enumerate(kinds, start=1):
        inside = instances.array == lesion_id
        shift = float(after[inside].mean() - before[inside].mean())
        spread = float((after - before)[inside].std())
        # A sphere of 6 mm at 2x2x2.5 mm holds about 4/3 pi 216 / 10 = 90 voxels.
        assert 60 < inside.sum() < 130
        if kind == "hypo":
            assert shift < -30
        elif kind == "hyper":
            assert shift > 30
        else:  # same mean as the host, abnormal texture
            assert abs(shift) < 5 and spread > 20
    untouched = instances.array == 0
    far = untouched & (np.abs(after - before) > 1e-3)
    assert far.sum() < 0.05 * untouched.sum()  # only the soft edge ring outside the masks changes


def test_case_is_deterministic_and_normal_cases_have_no_lesions():
    a = make_lesion_case(11, shape=(32, 32, 24), spacing_mm=(3.0, 3.0, 5.0), n_lesions=2,
                         radius_mm=(6.0, 8.0))
    b = make_lesion_case(11, shape=(32, 32, 24), spacing_mm=(3.0, 3.0, 5.0), n_lesions=2,
                         radius_mm=(6.0, 8.0))
    assert np.array_equal(a.image.array, b.image.array) and a.table.equals(b.table)
    bench = make_anomaly_benchmark(n_train=2, n_val=1, n_test_lesion=1, n_test_normal=1,
                                   shape=(24, 24, 16), spacing_mm=(4.0, 4.0, 8.0),
                                   radius_mm=(8.0, 10.0))
    assert len(bench.train) == 2 and len(bench.val) == 1
    assert bench.test[0].lesion_mask.array.any() and not bench.test[1].lesion_mask.array.any()
    assert bench.train[0].same_grid(bench.test[0].image)


def test_bad_lesion_spec_is_rejected():
    phantom = make_phantom(shape=(16, 16, 16), seed=0)
    with pytest.raises(InvalidArgumentError, match="kind"):
        insert_lesions(phantom.image, phantom.labels, radii_mm=[3.0], contrasts_hu=[10.0],
                       kinds=["blob"])
