"""Exception hierarchy for every user-facing failure in medseg.

Each message names the input that failed and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "MedsegError",
    "InputNotFoundError",
    "UnreadableFileError",
    "UnsupportedFormatError",
    "DicomSeriesError",
    "MultipleSeriesError",
    "MissingExtraError",
    "GeometryMismatchError",
    "InvalidVolumeError",
    "ConfigError",
    "InvalidArgumentError",
    "DatasetError",
    "ModelError",
    "BundleError",
    "TrainingError",
    "InferenceError",
    "VisualizationError",
]


class MedsegError(Exception):
    """Base class of all errors raised by medseg on bad input or state."""


class InputNotFoundError(MedsegError, FileNotFoundError):
    """A path given by the user does not exist."""


class UnreadableFileError(MedsegError):
    """A file exists but cannot be parsed (truncated, corrupt, wrong format)."""


class UnsupportedFormatError(MedsegError):
    """The file type is not one medseg reads or writes."""


class DicomSeriesError(MedsegError):
    """A DICOM series cannot be assembled into a volume."""


class MultipleSeriesError(DicomSeriesError):
    """A folder holds several series and the caller must choose one."""

    def __init__(self, message: str, series: list | None = None) -> None:
        super().__init__(message)
        self.series = series or []


class MissingExtraError(MedsegError, ImportError):
    """An optional dependency is needed; the message names the pip extra."""


class GeometryMismatchError(MedsegError):
    """Two volumes that must share a voxel grid do not."""


class InvalidVolumeError(MedsegError, ValueError):
    """Array or affine values that cannot form a valid Volume (NaN, bad ndim, singular affine)."""


class ConfigError(MedsegError, ValueError):
    """A configuration file or option is invalid."""


class InvalidArgumentError(MedsegError, ValueError):
    """A function argument has an invalid value (bad orientation code, spacing, slice)."""


class DatasetError(MedsegError):
    """A labeled dataset is malformed (missing pairs, wrong labels, bad geometry)."""


class ModelError(MedsegError, ValueError):
    """An unknown model name or invalid network option."""


class BundleError(MedsegError):
    """A model bundle is missing files or is incompatible."""


class TrainingError(MedsegError):
    """Training cannot start or continue."""


class InferenceError(MedsegError):
    """Prediction failed for a case."""


class VisualizationError(MedsegError, ValueError):
    """Data handed to a plot cannot be drawn (wrong type, missing columns, bad plane)."""
