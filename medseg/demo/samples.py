"""Real sample scans that ship inside installed PyPI packages, loaded through ``medseg.read``.

Nothing is downloaded: each sample names the package holding its files and that package's licence.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import InvalidArgumentError, MissingExtraError
from medseg.volume import Volume

__all__ = ["SampleInfo", "Sample", "list_samples", "load_sample", "sample_files"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleInfo:
    """What a sample is and where its files come from."""

    name: str
    description: str
    modality: str
    package: str
    licence: str
    has_labels: bool
    pip_install: str

    @property
    def available(self) -> bool:
        """True when the package holding the files is installed."""
        return importlib.util.find_spec(self.package) is not None


@dataclass(frozen=True)
class Sample:
    """A loaded sample: the image, its label map (if any) and its description."""

    info: SampleInfo
    image: Volume
    labels: Volume | None = None


_SAMPLES = {
    "chest_ct": SampleInfo(
        name="chest_ct",
        description="Low-resolution chest CT (128 x 128 x 34, 3.05 x 3.05 x 10 mm) with a 3D Slicer "
                    "segmentation of ribs, spine, lungs, heart and other structures",
        modality="CT",
        package="slicerio",
        licence="MIT (slicerio package, Copyright 2021 Andras Lasso)",
        has_labels=True,
        pip_install='pip install "medseg[demo]"  (or: pip install slicerio)',
    ),
    "ct_slice_dicom": SampleInfo(
        name="ct_slice_dicom",
        description="One 128 x 128 CT slice as a DICOM file (NEMA WG04 CT1, downsized), "
                    "pydicom's CT_small.dcm",
        modality="CT",
        package="pydicom",
        licence="pydicom test data (pydicom is MIT-licensed; see pydicom/data/test_files/README.txt)",
        has_labels=False,
        pip_install="pip install pydicom",
    ),
    "mr_slice_dicom": SampleInfo(
        name="mr_slice_dicom",
        description="One 64 x 64 MR slice as a DICOM file (NEMA WG04 MR1, downsized), "
                    "pydicom's MR_small.dcm",
        modality="MR",
        package="pydicom",
        licence="pydicom test data (pydicom is MIT-licensed; see pydicom/data/test_files/README.txt)",
        has_labels=False,
        pip_install="pip install pydicom",
    ),
}


def list_samples() -> list[SampleInfo]:
    """All samples medseg knows, installed or not (see ``SampleInfo.available``).

    Examples
    --------
    >>> [s.name for s in list_samples()]
    ['chest_ct', 'ct_slice_dicom', 'mr_slice_dicom']
    """
    return list(_SAMPLES.values())


def _info(name: str) -> SampleInfo:
    if name not in _SAMPLES:
        raise InvalidArgumentError(
            f"unknown sample {name!r}; available samples: {', '.join(_SAMPLES)} "
            "(see medseg.demo.list_samples())"
        )
    info = _SAMPLES[name]
    if not info.available:
        raise MissingExtraError(
            f"sample {name!r} ships inside the {info.package!r} package, which is not installed; "
            f"run: {info.pip_install}"
        )
    return info


def _slicerio_files() -> dict[str, Path]:
    import slicerio

    folder = Path(slicerio.__file__).parent / "data"
    return {"image": folder / "CTChest4.nrrd", "labels": folder / "Segmentation.seg.nrrd"}


def _pydicom_file(filename: str) -> Callable[[], dict[str, Path]]:
    def files() -> dict[str, Path]:
        from pydicom.data import get_testdata_file

        path = get_testdata_file(filename, download=False)
        return {"image": Path(path)} if path else {}

    return files


_FILES: dict[str, Callable[[], dict[str, Path]]] = {
    "chest_ct": _slicerio_files,
    "ct_slice_dicom": _pydicom_file("CT_small.dcm"),
    "mr_slice_dicom": _pydicom_file("MR_small.dcm"),
}


def sample_files(name: str) -> dict[str, Path]:
    """Paths of a sample's files inside its package: ``{"image": ..., "labels": ...}``.

    Raises
    ------
    InvalidArgumentError
        Unknown name.
    MissingExtraError
        The package holding the files is not installed (the message says what to install).
    """
    info = _info(name)
    files = _FILES[name]()
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing or not files:
        raise MissingExtraError(
            f"sample {name!r}: file(s) {missing or ['?']} are not in the installed {info.package!r} "
            f"package; reinstall it: {info.pip_install}"
        )
    return files


def _segment_names(path: Path) -> dict[int, str]:
    """Label value -> segment name from a 3D Slicer ``.seg.nrrd`` header (layer 0)."""
    import nrrd

    header = nrrd.read_header(str(path))
    names: dict[int, str] = {}
    index = 0
    while f"Segment{index}_Name" in header:
        layer = int(header.get(f"Segment{index}_Layer", 0))
        value = int(header.get(f"Segment{index}_LabelValue", index + 1))
        if layer == 0:
            names[value] = str(header[f"Segment{index}_Name"])
        index += 1
    return names


def load_sample(name: str) -> Sample:
    """Load a packaged sample scan (and its segmentation) with :func:`medseg.read`.

    Parameters
    ----------
    name : str
        One of :func:`list_samples` names: ``"chest_ct"`` (NRRD CT with a
        Slicer segmentation, from ``slicerio``), ``"ct_slice_dicom"`` and
        ``"mr_slice_dicom"`` (single DICOM slices from ``pydicom``).

    Returns
    -------
    Sample
        ``image`` and, for labelled samples, ``labels`` on the same grid with
        segment names in ``labels.labels``.

    Raises
    ------
    InvalidArgumentError
        Unknown sample name.
    MissingExtraError
        The package holding the sample is not installed; the message names
        the pip extra (``medseg[demo]``) or package.
    """
    import medseg

    info = _info(name)
    files = sample_files(name)
    image = medseg.read(files["image"], kind="image")
    labels = None
    if "labels" in files:
        labels = medseg.read(files["labels"], kind="labels")
        if not labels.labels:
            labels = labels.replace(labels=_segment_names(files["labels"]))
        image.require_same_grid(labels)
    meta = dict(image.meta, sample=info.name, licence=info.licence)
    log.debug("loaded sample %s from %s", name, files["image"])
    return Sample(info=info, image=image.replace(meta=meta), labels=labels)
