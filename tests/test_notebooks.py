"""Execute every tutorial notebook top to bottom with tiny parameters (nbclient, kernel python3).

Parameters are overridden by inserting a code cell right after the cell tagged ``parameters``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# Small sizes that keep each notebook to seconds; the notebook's own defaults are larger.
TINY = {
    "01_load_and_view.ipynb": {"shape": (32, 32, 24), "spacing_mm": (2.4, 2.4, 5.0)},
    "02_train_segmentation.ipynb": {"n_cases": 4, "shape": (32, 32, 32),
                                    "spacing_mm": (3.0, 3.0, 3.75), "epochs": 2,
                                    "iterations_per_epoch": 5, "max_minutes": 0.5},
    "03_metrics_and_measurements.ipynb": {"n_cases": 4, "shape": (40, 40, 32),
                                          "spacing_mm": (2.4, 2.4, 4.0)},
    "04_anomaly_detection.ipynb": {"n_train": 4, "n_val": 2, "shape": (32, 32, 32),
                                   "spacing_mm": (3.0, 3.0, 4.0), "patch_size": (32, 32),
                                   "batch_size": 4, "iterations": 20},
}


def _builder():
    spec = importlib.util.spec_from_file_location("notebook_build", NOTEBOOKS / "_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebooks_match_their_build_script_and_have_no_outputs():
    build = _builder()
    on_disk = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert on_disk == sorted(build.NOTEBOOKS)
    for name in on_disk:
        text = (NOTEBOOKS / name).read_text()
        assert text == build.render(name), f"{name} is stale: run python notebooks/_build.py"
        notebook = nbformat.reads(text, as_version=4)
        tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1
        assert all(not c.get("outputs") and c.get("execution_count") is None
                   for c in notebook.cells if c.cell_type == "code")


def _with_parameters(notebook, values: dict) -> None:
    index = next(i for i, c in enumerate(notebook.cells)
                 if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{key} = {value!r}" for key, value in values.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    cell["id"] = "injected-parameters"
    notebook.cells.insert(index + 1, cell)


@pytest.mark.parametrize("name", sorted(TINY))
def test_notebook_runs(name, tmp_path):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    _with_parameters(notebook, {**TINY[name], "work_dir": str(tmp_path / "work")})
    client = NotebookClient(notebook, kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, f"{name} displayed no figure"
