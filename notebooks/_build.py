"""Generate the tutorial notebooks (valid nbformat 4 JSON, outputs stripped) from ``_cells_*.py``.

Run ``python notebooks/_build.py`` after editing; the tests check the .ipynb files match this script.
Each notebook has one code cell tagged ``parameters`` holding small default sizes; the tests (and
papermill, if you use it) override them by inserting a cell right after it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def _cells(spec: list[tuple[str, str]]) -> list:
    cells = []
    for kind, source in spec:
        source = source.strip("\n")
        if kind == "md":
            cells.append(new_markdown_cell(source))
        elif kind == "parameters":
            cells.append(new_code_cell(source, metadata={"tags": ["parameters"]}))
        else:
            cells.append(new_code_cell(source))
    return cells


def _load(name: str):
    """Import a cell module beside this script (works when the script is loaded by path)."""
    spec = importlib.util.spec_from_file_location(f"notebook_cells_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_BASICS = _load("_cells_basics")
_ANALYSIS = _load("_cells_analysis")

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "01_load_and_view.ipynb": _BASICS.LOAD_AND_VIEW,
    "02_train_segmentation.ipynb": _BASICS.TRAIN_SEGMENTATION,
    "03_metrics_and_measurements.ipynb": _ANALYSIS.METRICS_AND_MEASUREMENTS,
    "04_anomaly_detection.ipynb": _ANALYSIS.ANOMALY_DETECTION,
}


def build_notebook(spec: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A notebook object (no outputs) from a list of (kind, source) cells."""
    notebook = new_notebook(cells=_cells(spec))
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    # Stable cell ids keep the files identical from one build to the next.
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index:02d}"
    nbformat.validate(notebook)
    return notebook


def render(name: str) -> str:
    """The JSON text of notebook ``name`` as this script writes it."""
    return nbformat.writes(build_notebook(NOTEBOOKS[name])) + "\n"


def main(argv: list[str]) -> int:
    """Write every notebook beside this script (or only those named in ``argv``)."""
    names = argv or list(NOTEBOOKS)
    for name in names:
        (HERE / name).write_text(render(name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
