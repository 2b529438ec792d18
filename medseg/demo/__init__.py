"""Demo and test data: deterministic synthetic phantoms, packaged real samples, the end-to-end demo.

``make_phantom``/``make_dataset`` build synthetic cases, ``load_sample`` reads real scans shipped in
installed packages, ``run_demo`` trains, predicts, evaluates and writes an HTML report.
"""

from __future__ import annotations

from typing import Any

from medseg.demo.phantoms import ORGAN_LABELS, PhantomCase, make_phantom
from medseg.demo.report import HtmlReport
from medseg.demo.samples import Sample, SampleInfo, list_samples, load_sample, sample_files
from medseg.demo.synthetic_dataset import make_dataset

__all__ = [
    "ORGAN_LABELS",
    "DemoResult",
    "HtmlReport",
    "PhantomCase",
    "Sample",
    "SampleInfo",
    "list_samples",
    "load_sample",
    "make_dataset",
    "make_phantom",
    "run_demo",
    "sample_files",
]


def __getattr__(name: str) -> Any:
    # The pipeline imports torch and the trainer; load it only when asked for.
    if name in ("run_demo", "DemoResult"):
        from medseg.demo import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'medseg.demo' has no attribute {name!r}")
