"""Small mixed cohorts for batch tests: NIfTI phantoms and a CT DICOM study."""

from __future__ import annotations

from pathlib import Path

from _tiny_bundle import SPACING_MM

import medseg
from medseg.demo import make_phantom

SHAPE = (32, 32, 32)


def phantom(seed: int):
    return make_phantom(shape=SHAPE, spacing_mm=SPACING_MM, seed=seed)


def write_cohort(root: Path, *, nifti_seeds=(11, 12), dicom_seed: int | None = 13) -> dict:
    """NIfTI cases under root/nifti and one CT DICOM study under root/dicom; returns truths."""
    from medseg.io import write_dicom_series

    truths = {}
    for seed in nifti_seeds:
        case = phantom(seed)
        medseg.write(case.image, root / "nifti" / f"case{seed}.nii.gz")
        truths[f"case{seed}"] = case
    if dicom_seed is not None:
        case = phantom(dicom_seed)
        write_dicom_series(case.image, root / "dicom" / "patient1" / "ct", series_description="CT abdomen",
                           patient_id="P1", uid_seed=f"ct{dicom_seed}")
        truths["dicom"] = case
    return truths
