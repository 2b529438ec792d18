"""Plan values against hand-computed ones: spacing rules, patch/batch sizing, normalisation, YAML."""

from __future__ import annotations

import math

import pytest

from medseg.data.fingerprint import Fingerprint, IntensityStats
from medseg.data.plan import (
    estimate_memory_mb,
    load_plan,
    make_plan,
    plan_target_spacing,
    save_plan,
)
from medseg.errors import ConfigError
from medseg.models.registry import default_topology


def _fingerprint(spacings, shapes, modality="CT"):
    stats = IntensityStats(mean=50.0, std=20.0, median=48.0, p00_5=-10.0, p99_5=120.0, min=-50.0,
                           max=200.0)
    ids = tuple(f"c{i}" for i in range(len(shapes)))
    return Fingerprint("toy", (modality,), {0: "background", 1: "a", 2: "b"}, ids,
                       tuple(map(tuple, spacings)), tuple(map(tuple, shapes)), (stats,),
                       {0: 0.9, 1: 0.08, 2: 0.02}, {i: "x" for i in ids})


SPACINGS = [(0.8, 0.8, 1.0), (1.0, 1.0, 1.5), (0.9, 0.9, 1.2)]
SHAPES = [(100, 100, 80)] * 3


def test_target_spacing_is_the_median():
    assert plan_target_spacing(SPACINGS, SHAPES) == (0.9, 0.9, 1.2)


def test_anisotropic_axis_takes_the_tenth_percentile():
    spacings = [(0.8, 0.8, z) for z in (5.0, 6.0, 8.0, 4.0, 7.0)]
    # median z = 6 mm > 3 x 0.8 and 30 slices * 3 < 256 voxels: z = 10th percentile of
    # [4, 5, 6, 7, 8] = 4 + 0.4 * (5 - 4) = 4.4 mm.
    assert plan_target_spacing(spacings, [(256, 256, 30)] * 5) == (0.8, 0.8, 4.4)
    # Many slices: the rule does not apply, the median stays.
    assert plan_target_spacing(spacings, [(256, 256, 300)] * 5) == (0.8, 0.8, 6.0)


def test_3d_plan_with_ample_memory_uses_the_median_shape():
    plan = make_plan(_fingerprint(SPACINGS, SHAPES), config="3d", memory_budget_mb=1e9)
    # Median resampled shape: (100*0.9/0.9, ..) = (100, 100, 80); 4 poolings (100 -> 6) need
    # multiples of 16, so the patch is rounded up to (112, 112, 80).
    assert plan.median_shape == (100, 100, 80)
    assert plan.patch_size == (112, 112, 80)
    assert plan.model_options["strides"] == [[1, 1, 1]] + [[2, 2, 2]] * 4
    assert plan.model_options["filters"] == [32, 64, 128, 256, 320]
    assert plan.model_options["out_channels"] == 3
    # 5% of all voxels (88.9^2*66.7 + 111.1^2*100 + 100^2*80 = 2.56e6) is less than one
    # patch, so the batch is nnU-Net's minimum of 2.
    assert plan.batch_size == 2


def test_2d_plan_batch_covers_five_percent_of_the_voxels():
    plan = make_plan(_fingerprint(SPACINGS, SHAPES), config="2d", memory_budget_mb=1e9)
    assert plan.patch_size == (112, 112)
    total = (100 * 0.8 / 0.9) ** 2 * (80 * 1.0 / 1.2) + (100 / 0.9) ** 2 * (80 * 1.5 / 1.2) + 100**2 * 80
    assert plan.batch_size == int(0.05 * total // (112 * 112)) == 10
    assert plan.model_options["spatial_dims"] == 2
    assert plan.model_options["filters"] == [32, 64, 128, 256, 512]


def test_small_budget_shrinks_the_patch_to_fit():
    plan = make_plan(_fingerprint(SPACINGS, SHAPES), config="3d", memory_budget_mb=300)
    strides = plan.model_options["strides"]
    for axis, size in enumerate(plan.patch_size):
        assert size % math.prod(s[axis] for s in strides) == 0
        assert size <= 112
    assert estimate_memory_mb(plan.patch_size, 2, plan.model_options["filters"], strides) <= 300
    assert plan.batch_size == 2


def test_memory_estimate_by_hand():
    # Stage feature maps: 16^3*8 (stride 1) + 8^3*16 (stride 2) = 32768 + 8192 values,
    # x 12 maps x 1.5 (backward) x batch 2 x 4 bytes / 2^20.
    expected = (16**3 * 8 + 8**3 * 16) * 12 * 1.5 * 2 * 4 / 2**20
    assert estimate_memory_mb((16, 16, 16), 2, [8, 16], [[1, 1, 1], [2, 2, 2]]) == pytest.approx(expected)


def test_normalisation_ct_vs_mr():
    ct = make_plan(_fingerprint(SPACINGS, SHAPES), memory_budget_mb=1e9).normalization
    assert (ct.scheme, ct.clip_low, ct.clip_high, ct.mean, ct.std) == ("ct", -10.0, 120.0, 50.0, 20.0)
    mr = make_plan(_fingerprint(SPACINGS, SHAPES, modality="MR"), memory_budget_mb=1e9).normalization
    assert mr.scheme == "zscore"


def test_overrides_and_topology():
    plan = make_plan(_fingerprint(SPACINGS, SHAPES), patch_size=(32, 32, 32), batch_size=3,
                     filters=(8, 16, 32), model_name="unet_small")
    assert plan.patch_size == (32, 32, 32) and plan.batch_size == 3
    assert plan.model_options["strides"] == default_topology((32, 32, 32), spacing_mm=(0.9, 0.9, 1.2),
                                                             max_stages=3)[1]
    assert plan.model_options["filters"] == [8, 16, 32]
    with pytest.raises(ConfigError, match="must have 2 values"):
        make_plan(_fingerprint(SPACINGS, SHAPES), config="2d", patch_size=(32, 32, 32))


def test_plan_yaml_round_trip_and_strict_keys(tmp_path):
    plan = make_plan(_fingerprint(SPACINGS, SHAPES), memory_budget_mb=1e9)
    path = save_plan(plan, tmp_path / "plan.yaml")
    assert load_plan(path) == plan
    edited = path.read_text().replace("batch_size: 2", "batch_size: 4")
    path.write_text(edited)
    assert load_plan(path).batch_size == 4
    path.write_text(edited.replace("batch_size:", "batchsize:"))
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        load_plan(path)
