"""Synthetic abdominal CT-like phantoms with known organ and lesion masks.

Shapes are defined in millimetres, so any size/spacing gives the same anatomy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from medseg import geometry
from medseg.volume import Volume

log = logging.getLogger(__name__)

__all__ = ["ORGAN_LABELS", "LESION_LABEL", "PhantomCase", "make_phantom"]

#: Label values of the phantom organs.
ORGAN_LABELS = {1: "liver", 2: "spleen", 3: "kidney"}
#: Label value used for lesions when they are written into the label map.
LESION_LABEL = 4

# Mean HU of each tissue (plausible contrast-enhanced abdominal CT values).
_HU = {"air": -1000.0, "fat": -100.0, "muscle": 30.0, "liver": 70.0, "spleen": 45.0,
       "kidney": 150.0, "bone": 500.0}


@dataclass(frozen=True)
class PhantomCase:
    """One synthetic case: CT-like image, label map, lesion mask and lesion centres."""

    image: Volume
    labels: Volume
    lesions: Volume
    lesion_centres_mm: list = field(default_factory=list)
    lesion_radii_mm: list = field(default_factory=list)


def _ellipsoid(points: np.ndarray, centre, radii, rotation: np.ndarray | None = None) -> np.ndarray:
    local = points - np.asarray(centre, dtype=float)
    if rotation is not None:
        local = local @ rotation
    return np.sum((local / np.asarray(radii, dtype=float)) ** 2, axis=-1) <= 1.0


def _rotation_z(angle_rad: float) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def make_phantom(
    *,
    shape: Sequence[int] = (64, 64, 64),
    spacing_mm: Sequence[float] = (1.5, 1.5, 2.0),
    seed: int = 0,
    n_lesions: int = 0,
    lesion_radius_mm: tuple[float, float] = (3.0, 8.0),
    lesion_contrast_hu: float = -40.0,
    noise_hu: float = 12.0,
    lesions_in_labels: bool = False,
) -> PhantomCase:
    """Generate a deterministic CT-like phantom with liver, spleen and kidneys.

    The body is an elliptic cylinder of muscle with a fat rim; a spine-like
    bright blob is an unlabeled distractor. Lesions (optional) are spheres
    inside the liver with ``lesion_contrast_hu`` relative to liver tissue.

    Parameters
    ----------
    shape, spacing_mm
        Voxel grid; the anatomy scales with the field of view (96 x 96 x 128 mm
        at the defaults).
    seed
        Seed for organ jitter, lesions and noise; equal seeds give equal arrays.
    n_lesions
        Number of spherical lesions placed inside the liver, apart from each other
        (fewer, with a warning, if the liver has no room for more).
    lesions_in_labels
        Also write lesions into ``labels`` with value 4 (``"lesion"``).

    Returns
    -------
    PhantomCase
        ``image`` (float32 HU), ``labels`` (uint8), ``lesions`` (uint8 0/1).

    Examples
    --------
    >>> case = make_phantom(shape=(32, 32, 32), seed=1)
    >>> case.image.shape, sorted(case.labels.labels)
    ((32, 32, 32), [1, 2, 3])
    """
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    spacing = np.asarray(spacing_mm, dtype=float)
    fov = spacing * np.asarray(shape)
    affine = geometry.affine_from_spacing(spacing, origin_mm=-fov / 2 + spacing / 2)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    points = geometry.apply_affine(affine, grid.reshape(-1, 3)).reshape(*shape, 3)
    # Normalised coordinates in [-1, 1] across the field of view.
    unit = points / (fov / 2)

    def jitter(scale: float) -> float:
        return float(rng.uniform(-scale, scale))

    body = np.sum((unit[..., :2] / [0.92, 0.78]) ** 2, axis=-1) <= 1.0
    inner = np.sum((unit[..., :2] / [0.84, 0.70]) ** 2, axis=-1) <= 1.0
    image = np.full(shape, _HU["air"], dtype=np.float32)
    image[body] = _HU["fat"]
    image[inner] = _HU["muscle"]
    labels = np.zeros(shape, dtype=np.uint8)

    # RAS: +x is the patient's right (liver), -x the left (spleen).
    angle = jitter(0.25)
    liver = _ellipsoid(unit, (0.35 + jitter(0.05), 0.1 + jitter(0.05), 0.15 + jitter(0.05)),
                       (0.38 + jitter(0.04), 0.42 + jitter(0.04), 0.5 + jitter(0.05)),
                       _rotation_z(-angle))
    # A notch makes the liver non-convex, like the real one.
    liver &= ~_ellipsoid(unit, (0.1, -0.25, 0.0), (0.18, 0.15, 0.6))
    spleen = _ellipsoid(unit, (-0.45 + jitter(0.04), 0.25 + jitter(0.04), 0.25 + jitter(0.05)),
                        (0.16 + jitter(0.02), 0.22 + jitter(0.02), 0.3 + jitter(0.03)),
                        _rotation_z(-jitter(0.4)))
    kidney_l = _ellipsoid(unit, (-0.32 + jitter(0.03), -0.3 + jitter(0.03), -0.25 + jitter(0.04)),
                          (0.12, 0.1, 0.22 + jitter(0.02)), _rotation_z(-0.4 - jitter(0.2)))
    kidney_r = _ellipsoid(unit, (0.32 + jitter(0.03), -0.3 + jitter(0.03), -0.3 + jitter(0.04)),
                          (0.12, 0.1, 0.22 + jitter(0.02)), _rotation_z(0.4 - jitter(0.2)))
    spine = _ellipsoid(unit, (0.0, -0.55, 0.0), (0.1, 0.1, 2.0))
    for mask, tissue, value in ((liver, "liver", 1), (spleen, "spleen", 2),
                                (kidney_l, "kidney", 3), (kidney_r, "kidney", 3)):
        mask &= inner
        image[mask] = _HU[tissue]
        labels[mask] = value
    image[spine & inner] = _HU["bone"]

    lesions = np.zeros(shape, dtype=np.uint8)
    centres: list[list[float]] = []
    radii: list[float] = []
    liver_points = points[labels == 1]
    margin_mm = float(spacing.max())
    for number in range(int(n_lesions)):
        # Lesions lie inside the liver and never touch each other, so each one is
        # exactly one connected component; a lesion that finds no room is left out.
        for _attempt in range(200):
            radius = float(rng.uniform(*lesion_radius_mm))
            centre = liver_points[rng.integers(len(liver_points))]
            apart = all(np.linalg.norm(centre - np.asarray(c)) > radius + r + 2 * margin_mm
                        for c, r in zip(centres, radii))
            if not apart:
                continue
            sphere = np.sum((points - centre) ** 2, axis=-1) <= radius**2
            if sphere.any() and (labels[sphere] == 1).mean() > 0.95:
                break
        else:
            log.warning("phantom(seed=%d): room for only %d of %d lesions", seed, number, n_lesions)
            break
        lesions[sphere] = 1
        image[sphere] = _HU["liver"] + lesion_contrast_hu
        centres.append([float(c) for c in centre])
        radii.append(radius)

    # Texture, partial-volume blur, then scanner noise.
    texture = ndimage.gaussian_filter(rng.normal(0.0, 1.0, shape).astype(np.float32), 2.0)
    image = image + 8.0 * texture / max(float(texture.std()), 1e-6) * (image > -500)
    image = ndimage.gaussian_filter(image, sigma=0.6 * 1.5 / spacing.clip(min=1e-3))
    image = image + rng.normal(0.0, noise_hu, shape).astype(np.float32)

    names = dict(ORGAN_LABELS)
    if lesions_in_labels and n_lesions:
        labels = labels.copy()
        labels[lesions > 0] = LESION_LABEL
        names[LESION_LABEL] = "lesion"
    meta = {"source": f"phantom(seed={seed})", "modality": "CT"}
    return PhantomCase(
        image=Volume(image.astype(np.float32), affine, "image", {}, meta),
        labels=Volume(labels, affine, "labels", names, meta),
        lesions=Volume(lesions, affine, "labels", {1: "lesion"}, meta),
        lesion_centres_mm=centres,
        lesion_radii_mm=radii,
    )
