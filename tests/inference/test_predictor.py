"""Predictor: accuracy on phantoms, original-grid output, memory bound, TTA, ensembles, precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.data.preprocess import NormalizationSpec
from medseg.demo import make_phantom
from medseg.errors import BundleError, InferenceError, InvalidArgumentError
from medseg.inference import Predictor
from medseg.inference.bundle import load_bundle, save_bundle
from medseg.inference.sliding_window import (
    WindowSettings,
    cpu_supports_bf16,
    slab_plan,
    sliding_window_probabilities,
    window_starts,
)
from medseg.volume import Volume


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def organ_dice(pred: Volume, ref: Volume) -> dict[int, float]:
    return {v: dice(pred.array == v, ref.array == v) for v in (1, 2, 3)}


@pytest.fixture(scope="module")
def predictor(tiny_bundle):
    return Predictor.from_bundle(tiny_bundle, precision="fp32")


def test_segments_held_out_phantoms(predictor):
    scores = []
    for seed in (1, 2, 3):
        case = make_phantom(shape=(32, 32, 32), spacing_mm=(3.0, 3.0, 4.0), seed=seed)
        labels = predictor(case.image)
        assert labels.kind == "labels" and labels.array.dtype == np.uint8
        assert labels.labels == {1: "liver", 2: "spleen", 3: "kidney"}
        scores.append(organ_dice(labels, case.labels))
    mean = {v: np.mean([s[v] for s in scores]) for v in (1, 2, 3)}
    assert mean[1] > 0.85 and mean[2] > 0.5 and mean[3] > 0.6, mean


def test_labels_on_original_lps_anisotropic_grid(predictor):
    # Same anatomy (defined in mm) sampled on a finer, anisotropic grid, stored LPS.
    case = make_phantom(shape=(48, 40, 26), spacing_mm=(2.0, 2.4, 4.9), seed=2)
    lps_image, lps_truth = case.image.reorient("LPS"), case.labels.reorient("LPS")
    assert lps_image.orientation == "LPS"
    labels = predictor(lps_image)
    assert labels.shape == lps_image.shape
    np.testing.assert_allclose(labels.affine, lps_image.affine)
    scores = organ_dice(labels, lps_truth)
    assert scores[1] > 0.85 and np.mean(list(scores.values())) > 0.65, scores
    # The network sees the same RAS-resampled input either way, so the LPS answer is
    # exactly the RAS answer with the axes flipped back.
    ras_labels = predictor(case.image)
    np.testing.assert_array_equal(labels.reorient("RAS").array, ras_labels.array)


def test_probabilities_sum_to_one_on_input_grid(predictor):
    case = make_phantom(shape=(30, 34, 20), spacing_mm=(3.3, 2.9, 6.0), seed=4)
    labels, probabilities = predictor.predict(case.image, return_probabilities=True)
    assert probabilities.kind == "probabilities"
    assert probabilities.array.shape == case.image.shape + (4,)
    np.testing.assert_allclose(probabilities.array.sum(-1), 1.0, atol=1e-4)
    # Labels are the argmax of the resampled probabilities (not resampled labels).
    np.testing.assert_array_equal(labels.array, np.argmax(probabilities.array, -1))


def test_memory_budget_gives_same_labels(predictor, tiny_bundle):
    # Long z axis: 5 windows along z at the network grid; the off-grid input also
    # exercises the slabbed resampling back to the original grid.
    case = make_phantom(shape=(30, 32, 58), spacing_mm=(3.2, 3.0, 4.4), seed=5)
    reference, reference_probs = predictor.predict(case.image, return_probabilities=True)
    for budget_mb, store in ((7.0, "float32"), (3.0, "float16")):
        bounded = Predictor.from_bundle(tiny_bundle, precision="fp32", memory_budget_mb=budget_mb)
        plan = bounded.memory_plan(case.image)
        assert plan.store_dtype == store
        assert plan.network_slab_depth is not None and plan.network_slab_depth < 64
        labels, probs = bounded.predict(case.image, return_probabilities=True)
        if store == "float32":
            np.testing.assert_allclose(probs.array, reference_probs.array, atol=1e-5)
            np.testing.assert_array_equal(labels.array, reference.array)
        else:  # also slabs the resampling back; float16 storage rounds probabilities
            assert plan.output_slab_depth < 58
            np.testing.assert_allclose(probs.array, reference_probs.array, atol=2e-3)
            assert np.mean(labels.array != reference.array) < 1e-3


def test_budget_covers_preprocessing_of_a_fine_oblique_input(predictor, tiny_bundle):
    # A fine, oblique LPS input (1.0 x 1.0 x 1.5 mm, 96 x 96 x 156) onto the 3 x 3 x 4 mm
    # network grid: whole-volume cubic resampling would need ~50 MiB (float32 copy + float64
    # spline coefficients); a 20 MiB budget makes preprocessing run in z-slabs.
    from scipy.spatial.transform import Rotation

    from medseg.data.preprocess import network_grid
    from medseg.resample import slab_depth_for

    case = make_phantom(shape=(96, 96, 156), spacing_mm=(1.0, 1.0, 1.5), seed=12)
    image = case.image.reorient("LPS")
    affine = image.affine.copy()
    affine[:3, :3] = Rotation.from_euler("z", 8.0, degrees=True).as_matrix() @ affine[:3, :3]
    image = image.replace(array=np.round(image.array).astype(np.int16), affine=affine)
    bounded = Predictor.from_bundle(tiny_bundle, precision="fp32", memory_budget_mb=20.0)
    plan = bounded.memory_plan(image)
    assert predictor.memory_plan(image).estimated_peak_mb > 40.0  # unbudgeted: whole volume
    assert plan.preprocess_working_mb is not None and plan.store_dtype == "float32"
    assert plan.estimated_peak_mb <= 20.0
    grid_affine, grid_shape = network_grid(image, target_spacing_mm=bounded.spec.target_spacing_mm)
    depth = slab_depth_for(image, affine=grid_affine, shape=grid_shape, order=3,
                           max_working_mb=plan.preprocess_working_mb)
    assert 1 < depth < grid_shape[2]  # several preprocessing slabs
    slabbed_input, whole_input = bounded.preprocess(image), predictor.preprocess(image)
    np.testing.assert_array_equal(slabbed_input.affine, whole_input.affine)
    np.testing.assert_allclose(slabbed_input.array, whole_input.array, rtol=0, atol=1e-4)
    reference, reference_probs = predictor.predict(image, return_probabilities=True)
    labels, probs = bounded.predict(image, return_probabilities=True)
    np.testing.assert_allclose(probs.array, reference_probs.array, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(labels.array, reference.array)
    truth = case.labels.reorient("LPS").array  # same voxels; the anatomy turned with the affine
    assert dice(labels.array == 1, truth == 1) > 0.7


class _Conv(torch.nn.Module):
    """Deterministic non-trivial 'network': one 3x3x3 conv to 3 classes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv3d(1, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x) * 4.0


@pytest.mark.parametrize("depth", [1, 7, 20, 33])
def test_slabs_reproduce_full_volume_windows(depth):
    image = np.random.default_rng(0).normal(size=(1, 20, 18, 70)).astype(np.float32)
    settings = WindowSettings(patch_size=(16, 16, 16), overlap=0.5)
    model = _Conv().eval()
    kwargs = dict(n_classes=3, settings=settings, device=torch.device("cpu"))
    full = sliding_window_probabilities(image, [model], **kwargs)
    slabbed = sliding_window_probabilities(image, [model], slab_depth=depth, **kwargs)
    np.testing.assert_allclose(slabbed, full, atol=1e-6)


def test_window_grid_matches_monai():
    from monai.data.utils import dense_patch_slices

    for size, patch, overlap in [(70, 16, 0.5), (100, 64, 0.5), (33, 32, 0.25), (16, 16, 0.5)]:
        step = max(int(patch * (1 - overlap)), 1) if size != patch else patch
        slices = dense_patch_slices((size,), (patch,), (step,))
        assert window_starts(size, patch, overlap) == [s[0].start for s in slices]
    for out_start, out_stop, crop_start, crop_stop in slab_plan(70, 16, 0.5, 10):
        assert crop_start <= out_start < out_stop <= crop_stop


def test_tta_is_mirror_equivariant(tiny_bundle):
    tta = Predictor.from_bundle(tiny_bundle, precision="fp32", tta=True)
    # 24^3 network grid: one window, so TTA makes the whole prediction flip-equivariant.
    case = make_phantom(shape=(24, 24, 24), spacing_mm=(3.0, 3.0, 4.0), seed=6)
    image = tta.preprocess(case.image)
    flipped = image.with_array(np.ascontiguousarray(image.array[::-1, :, ::-1]))
    p = tta.network_probabilities(case.image, preprocessed=image).array
    q = tta.network_probabilities(case.image, preprocessed=flipped).array
    np.testing.assert_allclose(q[::-1, :, ::-1], p, atol=1e-4)
    plain = Predictor.from_bundle(tiny_bundle, precision="fp32")
    assert np.abs(plain.network_probabilities(case.image, preprocessed=flipped).array[::-1, :, ::-1]
                  - p).max() > 1e-3  # without TTA the network is not equivariant


def test_ensemble_averages_probabilities(tiny_bundle, random_bundle):
    case = make_phantom(shape=(32, 32, 32), spacing_mm=(3.0, 3.0, 4.0), seed=7)
    singles = [Predictor.from_bundle(b, precision="fp32").network_probabilities(case.image).array
               for b in (tiny_bundle, random_bundle)]
    ensemble = Predictor.from_bundle([tiny_bundle, random_bundle], precision="fp32")
    assert len(ensemble.models) == 2 and len(ensemble.weights_sha256) == 2
    np.testing.assert_allclose(ensemble.network_probabilities(case.image).array,
                               (singles[0] + singles[1]) / 2, atol=1e-5)


def test_incompatible_ensemble_is_refused(tiny_bundle, tmp_path):
    model, spec = load_bundle(tiny_bundle)
    import dataclasses

    other = dataclasses.replace(spec, target_spacing_mm=(1.0, 1.0, 1.0))
    save_bundle(tmp_path / "other", model=model, spec=other)
    with pytest.raises(BundleError, match="target_spacing_mm"):
        Predictor.from_bundle([tiny_bundle, tmp_path / "other"])


@pytest.mark.skipif(not cpu_supports_bf16(), reason="CPU has no native bf16")
def test_bf16_autocast_keeps_dice(tiny_bundle, predictor):
    bf16 = Predictor.from_bundle(tiny_bundle, precision="auto", device="cpu")
    assert bf16.precision == "bf16"
    case = make_phantom(shape=(32, 32, 32), spacing_mm=(3.0, 3.0, 4.0), seed=8)
    fast, exact = bf16(case.image), predictor(case.image)
    for value in (1, 2, 3):
        assert dice(fast.array == value, exact.array == value) > 0.97
        truth = case.labels.array == value
        assert abs(dice(fast.array == value, truth) - dice(exact.array == value, truth)) < 0.02


def test_bundle_postprocessing_rules_are_applied(tiny_bundle, tmp_path):
    import dataclasses

    model, spec = load_bundle(tiny_bundle)
    rules = {"keep_largest_component": [1, 2], "min_size_mm3": 0.0, "fill_holes": []}
    save_bundle(tmp_path / "pp", model=model, spec=dataclasses.replace(spec, postprocessing=rules))
    predictor = Predictor.from_bundle(tmp_path / "pp", precision="fp32")
    # Noise makes stray islands; the rule leaves exactly one liver and one spleen component.
    case = make_phantom(shape=(32, 32, 32), spacing_mm=(3.0, 3.0, 4.0), seed=9, noise_hu=60.0)
    import cc3d

    labels = predictor(case.image)
    for value in (1, 2):
        assert cc3d.connected_components(labels.array == value, connectivity=26).max() == 1
    raw = Predictor.from_bundle(tmp_path / "pp", precision="fp32", postprocess=False)(case.image)
    kept = raw.array == labels.array
    assert np.all(labels.array[~kept] == 0)


def test_bad_inputs_raise_medseg_errors(predictor):
    case = make_phantom(shape=(16, 16, 16), spacing_mm=(6.0, 6.0, 8.0), seed=1)
    with pytest.raises(InferenceError, match="expected an image"):
        predictor(case.labels)
    two_channels = case.image.with_array(np.stack([case.image.array] * 2, axis=-1))
    with pytest.raises(InferenceError, match="1 channel"):
        predictor(two_channels)
    with pytest.raises(InvalidArgumentError, match="overlap"):
        Predictor(predictor.models, predictor.spec, overlap=1.0)
    with pytest.raises(InvalidArgumentError, match="precision"):
        Predictor(predictor.models, predictor.spec, precision="int8")


def test_two_dimensional_bundle_predicts_slice_by_slice(tmp_path):
    from medseg.inference.bundle import BundleSpec
    from medseg.models import create_model

    options = dict(spatial_dims=2, in_channels=1, out_channels=2, patch_size=[16, 16],
                   base_filters=4, max_filters=8)
    spec = BundleSpec(model_name="unet_small", model_options=options, labels={0: "bg", 1: "fg"},
                      spatial_dims=2, patch_size=(16, 16), target_spacing_mm=(2.0, 2.0, 3.0),
                      normalization=NormalizationSpec("none"))
    torch.manual_seed(0)
    save_bundle(tmp_path / "b2d", model=create_model("unet_small", **options), spec=spec)
    predictor = Predictor.from_bundle(tmp_path / "b2d", precision="fp32")
    image = Volume.from_array(np.random.default_rng(0).normal(size=(20, 20, 6)).astype(np.float32),
                              spacing_mm=(2.0, 2.0, 3.0))
    probs = predictor.network_probabilities(image).array
    # Each output slice depends only on its own input slice.
    changed = image.array.copy()
    changed[..., 3] += 5.0
    probs_changed = predictor.network_probabilities(image.with_array(changed)).array
    np.testing.assert_allclose(np.delete(probs_changed, 3, axis=2), np.delete(probs, 3, axis=2),
                               atol=1e-6)
    assert not np.allclose(probs_changed[..., 3, :], probs[..., 3, :])
