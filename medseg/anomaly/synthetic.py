"""Synthetic anomaly benchmark: normal phantoms and phantoms with inserted lesions of known truth.

Lesions vary in size, contrast and kind, including lesions with normal mean intensity but abnormal texture.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from medseg.atomic import atomic_write_text
from medseg.demo.phantoms import make_phantom
from medseg.errors import InvalidArgumentError
from medseg.volume import Volume

__all__ = [
    "LESION_KINDS",
    "LesionCase",
    "AnomalyBenchmark",
    "insert_lesions",
    "make_normal_scan",
    "make_lesion_case",
    "make_anomaly_benchmark",
    "write_lesion_dataset",
]

log = logging.getLogger(__name__)

#: ``hypo``/``hyper``: darker/brighter than the host tissue; ``texture``: same mean, coarse
#: high-variance texture; ``ring``: rim-enhancing with a dark core, same mean as the host.
LESION_KINDS = ("hypo", "hyper", "texture", "ring")


@dataclass(frozen=True)
class LesionCase:
    """A phantom with inserted lesions: image, organ labels, lesion instances and their table."""

    image: Volume
    organs: Volume
    lesions: Volume
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    case_id: str = "case"

    @property
    def lesion_mask(self) -> Volume:
        """Binary (0/1 uint8) lesion mask."""
        return self.lesions.with_array((self.lesions.array > 0).astype(np.uint8), labels={1: "lesion"})


@dataclass(frozen=True)
class AnomalyBenchmark:
    """Normal training/validation images and test cases (with and without lesions)."""

    train: list[Volume]
    val: list[Volume]
    test: list[LesionCase]


def _lobulated_weight(points: np.ndarray, centre: np.ndarray, radius: float,
                      rng: np.random.Generator, spacing: np.ndarray, lobulation: float) -> np.ndarray:
    """Soft (0..1) mask of a sphere whose radius varies with direction (lobulated outline)."""
    offset = points - centre
    distance = np.linalg.norm(offset, axis=-1)
    unit = offset / np.maximum(distance, 1e-6)[..., None]
    bumps = np.zeros(distance.shape)
    for _ in range(3):  # a few random low-order lobes
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        bumps += rng.uniform(-1, 1) * (unit @ axis) ** 2
    local_radius = radius * (1.0 + lobulation * bumps / 3.0)
    edge_mm = 0.5 * float(spacing.min())  # partial-volume ramp of about one voxel
    return np.clip((local_radius - distance) / (2 * edge_mm) + 0.5, 0.0, 1.0)


def _texture(shape: Sequence[int], rng: np.random.Generator, amplitude_hu: float) -> np.ndarray:
    noise = ndimage.gaussian_filter(rng.normal(size=shape), 0.7)
    return amplitude_hu * noise / max(float(noise.std()), 1e-6)


def insert_lesions(
    image: Volume,
    organs: Volume,
    *,
    radii_mm: Sequence[float],
    contrasts_hu: Sequence[float],
    kinds: Sequence[str],
    seed: int = 0,
    host_labels: Sequence[int] = (1, 2, 3),
    lobulation: float = 0.3,
) -> tuple[Volume, Volume, pd.DataFrame]:
    """Insert lesions into an image at random positions inside host organs.

    Parameters
    ----------
    image, organs : Volume
        CT-like image (HU) and its organ label map on the same grid.
    radii_mm, contrasts_hu, kinds
        One entry per lesion. ``contrasts_hu`` is the mean shift for ``hypo``
        (applied as ``-|c|``) and ``hyper`` (``+|c|``) lesions and the texture
        amplitude (standard deviation, HU) for ``texture`` and ``ring`` lesions,
        whose mean intensity equals the host tissue's.
    seed
        Positions, shapes and textures are drawn from this seed.
    host_labels
        Organ label values a lesion may be placed in (at least 90% inside).

    Returns
    -------
    image, instances, table
        The new image, a lesion instance map (1..n, uint16) and a table with
        ``lesion_id, kind, radius_mm, contrast_hu, host_label, centre_r_mm,
        centre_a_mm, centre_s_mm, volume_ml``.
    """
    if not (len(radii_mm) == len(contrasts_hu) == len(kinds)):
        raise InvalidArgumentError("radii_mm, contrasts_hu and kinds need one entry per lesion")
    unknown = sorted(set(kinds) - set(LESION_KINDS))
    if unknown:
        raise InvalidArgumentError(f"unknown lesion kind(s) {unknown}; use {LESION_KINDS}")
    rng = np.random.default_rng(seed)
    spacing = np.asarray(image.spacing_mm)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in image.shape], indexing="ij"), axis=-1)
    points = image.index_to_ras_mm(grid.reshape(-1, 3)).reshape(*image.shape, 3)
    host = np.isin(organs.array, list(host_labels))
    candidates = points[host]
    array = image.array.astype(np.float32).copy()
    instances = np.zeros(image.shape, dtype=np.uint16)
    rows = []
    for number, (radius, contrast, kind) in enumerate(zip(radii_mm, contrasts_hu, kinds), start=1):
        weight = None
        taken = ndimage.binary_dilation(instances > 0, iterations=2)
        for _attempt in range(100):
            centre = candidates[rng.integers(len(candidates))]
            weight = _lobulated_weight(points, centre, float(radius), rng, spacing, lobulation)
            inside = weight > 0.5
            if inside.sum() == 0:
                continue
            in_host = host[inside].mean()
            free = not np.any(taken[inside])
            if in_host >= 0.9 and free:
                break
        else:
            log.warning("lesion %d (radius %.1f mm) overlaps its host border or other lesions",
                        number, radius)
        inside = weight > 0.5
        if kind == "hypo":
            array += -abs(contrast) * weight
        elif kind == "hyper":
            array += abs(contrast) * weight
        elif kind == "texture":
            texture = _texture(image.shape, rng, abs(contrast))
            texture -= float((texture * weight).sum() / weight.sum())  # keep the host's mean
            array += texture * weight
        else:  # ring: bright rim, dark core, zero mean shift over the lesion
            distance = np.linalg.norm(points - centre, axis=-1)
            rim = (distance > 0.6 * radius).astype(np.float32)
            pattern = np.where(rim > 0, 1.0, -1.0) * abs(contrast)
            pattern -= float((pattern * weight).sum() / weight.sum())
            array += pattern * weight
        instances[inside & (instances == 0)] = number
        rows.append({
            "lesion_id": number, "kind": kind, "radius_mm": float(radius),
            "contrast_hu": float(contrast), "host_label": int(np.bincount(
                organs.array[inside].astype(int)).argmax()),
            "centre_r_mm": float(centre[0]), "centre_a_mm": float(centre[1]),
            "centre_s_mm": float(centre[2]),
            "volume_ml": float(inside.sum() * image.voxel_volume_ml),
        })
    table = pd.DataFrame(rows, columns=[
        "lesion_id", "kind", "radius_mm", "contrast_hu", "host_label", "centre_r_mm",
        "centre_a_mm", "centre_s_mm", "volume_ml"])
    names = {i: f"lesion_{i}" for i in range(1, len(rows) + 1)}
    return (image.with_array(array),
            Volume(instances, image.affine, "labels", names, dict(image.meta)), table)


def make_normal_scan(
    seed: int,
    *,
    shape: Sequence[int] = (64, 64, 64),
    spacing_mm: Sequence[float] = (1.5, 1.5, 2.0),
    enhancement_sd_hu: float = 10.0,
    shift_mm: float = 3.0,
) -> tuple[Volume, Volume]:
    """A normal phantom with inter-subject variation: organ enhancement and residual misalignment.

    Each organ's mean intensity moves by a normal draw of ``enhancement_sd_hu``
    (contrast timing differs between patients) and the whole body is shifted
    by up to ``shift_mm`` per axis (registration to a common frame is never
    exact). ``0`` for both gives :func:`medseg.demo.make_phantom` unchanged.

    Returns
    -------
    image, organs : Volume
        CT-like image (HU) and organ labels on the shared grid.
    """
    phantom = make_phantom(shape=shape, spacing_mm=spacing_mm, seed=seed, n_lesions=0)
    rng = np.random.default_rng([seed, 5417])
    image = phantom.image.array.astype(np.float32)
    labels = phantom.labels.array
    spacing = np.asarray(spacing_mm, dtype=float)
    for value in sorted(phantom.labels.labels):
        soft = ndimage.gaussian_filter((labels == value).astype(np.float32), 0.9 / spacing)
        image += float(rng.normal(0.0, enhancement_sd_hu)) * soft
    if shift_mm > 0:
        offset = rng.uniform(-shift_mm, shift_mm, size=3) / spacing
        image = ndimage.shift(image, offset, order=1, mode="nearest")
        labels = ndimage.shift(labels, offset, order=0, mode="nearest")
    return (phantom.image.with_array(image.astype(np.float32)),
            phantom.labels.with_array(labels.astype(np.uint8)))


def make_lesion_case(
    seed: int,
    *,
    shape: Sequence[int] = (64, 64, 64),
    spacing_mm: Sequence[float] = (1.5, 1.5, 2.0),
    n_lesions: int = 3,
    radius_mm: tuple[float, float] = (3.0, 9.0),
    contrast_hu: tuple[float, float] = (20.0, 60.0),
    kinds: Sequence[str] = LESION_KINDS,
    case_id: str | None = None,
    enhancement_sd_hu: float = 0.0,
    shift_mm: float = 0.0,
) -> LesionCase:
    """One phantom (``medseg.demo.make_phantom``) with ``n_lesions`` random lesions.

    Radii, contrasts and kinds are drawn uniformly from the given ranges and
    choices with ``seed``; ``n_lesions=0`` gives a normal case.
    ``enhancement_sd_hu`` and ``shift_mm`` add inter-subject variation
    (see :func:`make_normal_scan`).

    Examples
    --------
    >>> case = make_lesion_case(3, shape=(32, 32, 32), spacing_mm=(3.0, 3.0, 4.0), n_lesions=2,
    ...                         radius_mm=(6.0, 8.0))
    >>> len(case.table), int(case.lesions.array.max())
    (2, 2)
    """
    normal_image, organs = make_normal_scan(seed, shape=shape, spacing_mm=spacing_mm,
                                            enhancement_sd_hu=enhancement_sd_hu, shift_mm=shift_mm)
    case_id = case_id or f"case_{seed:04d}"
    rng = np.random.default_rng([seed, 7919])
    radii = rng.uniform(*radius_mm, size=n_lesions)
    contrasts = rng.uniform(*contrast_hu, size=n_lesions)
    chosen = [str(kinds[i]) for i in rng.integers(len(kinds), size=n_lesions)]
    image, instances, table = insert_lesions(
        normal_image, organs, radii_mm=radii, contrasts_hu=contrasts, kinds=chosen,
        seed=seed + 104729)
    meta = {"source": case_id, "modality": "CT"}
    return LesionCase(image.replace(meta=meta), organs.replace(meta=meta),
                      instances.replace(meta=meta), table.assign(case_id=case_id), case_id)


def make_anomaly_benchmark(
    *,
    n_train: int = 16,
    n_val: int = 4,
    n_test_lesion: int = 8,
    n_test_normal: int = 4,
    shape: Sequence[int] = (64, 64, 64),
    spacing_mm: Sequence[float] = (1.5, 1.5, 2.0),
    n_lesions: int = 3,
    radius_mm: tuple[float, float] = (3.0, 9.0),
    contrast_hu: tuple[float, float] = (20.0, 60.0),
    kinds: Sequence[str] = LESION_KINDS,
    enhancement_sd_hu: float = 10.0,
    shift_mm: float = 3.0,
    seed: int = 0,
) -> AnomalyBenchmark:
    """Normal phantoms for training/validation and a test set with inserted lesions.

    All phantoms share one frame (same grid, anatomy jittered per seed), so a
    per-voxel statistic of the normal set is aligned with every test case.
    Seeds never repeat between the three splits. Inter-subject variation
    (``enhancement_sd_hu``, ``shift_mm``, see :func:`make_normal_scan`) is on
    by default, as in real cohorts; set both to 0 for identical anatomy.
    """
    variation = {"enhancement_sd_hu": enhancement_sd_hu, "shift_mm": shift_mm}

    def normal(index: int) -> Volume:
        image, _ = make_normal_scan(seed + index, shape=shape, spacing_mm=spacing_mm, **variation)
        return image.replace(meta={"source": f"normal_{seed + index:04d}", "modality": "CT"})

    train = [normal(i) for i in range(n_train)]
    val = [normal(n_train + i) for i in range(n_val)]
    first_test = seed + n_train + n_val
    test = [
        make_lesion_case(first_test + i, shape=shape, spacing_mm=spacing_mm,
                         n_lesions=n_lesions if i < n_test_lesion else 0,
                         radius_mm=radius_mm, contrast_hu=contrast_hu, kinds=kinds,
                         case_id=f"test_{i:03d}", **variation)
        for i in range(n_test_lesion + n_test_normal)
    ]
    return AnomalyBenchmark(train, val, test)


def write_lesion_dataset(
    folder: str | Path,
    *,
    n_cases: int = 12,
    shape: Sequence[int] = (48, 48, 48),
    spacing_mm: Sequence[float] = (2.0, 2.0, 2.5),
    n_lesions: int = 3,
    radius_mm: tuple[float, float] = (4.0, 9.0),
    contrast_hu: tuple[float, float] = (50.0, 80.0),
    kinds: Sequence[str] = ("hypo", "hyper"),
    seed: int = 0,
    name: str = "Lesions",
) -> Path:
    """Write lesion phantoms as an MSD dataset whose labels are ``{0: background, 1: lesion}``.

    Used to train and test the supervised lesion detector. Returns the folder.
    """
    from medseg.io import write

    root = Path(folder)
    training = []
    for index in range(n_cases):
        case_id = f"{name.lower()}_{index:03d}"
        case = make_lesion_case(seed + index, shape=shape, spacing_mm=spacing_mm,
                                n_lesions=n_lesions, radius_mm=radius_mm,
                                contrast_hu=contrast_hu, kinds=kinds, case_id=case_id)
        write(case.image, root / "imagesTr" / f"{case_id}.nii.gz")
        write(case.lesion_mask, root / "labelsTr" / f"{case_id}.nii.gz")
        training.append({"image": f"./imagesTr/{case_id}.nii.gz",
                         "label": f"./labelsTr/{case_id}.nii.gz"})
    description = {
        "name": name, "description": "Synthetic lesion phantoms generated by medseg.anomaly",
        "modality": {"0": "CT"}, "labels": {"0": "background", "1": "lesion"},
        "numTraining": len(training), "numTest": 0, "training": training, "test": [],
    }
    atomic_write_text(root / "dataset.json", json.dumps(description, indent=2))
    return root
