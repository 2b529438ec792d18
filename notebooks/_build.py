"""Generate the tutorial notebooks (valid nbformat 4 JSON, outputs stripped) from the cells below.

Run ``python notebooks/_build.py`` after editing; the tests check the .ipynb files match this script.
Each notebook has one code cell tagged ``parameters`` holding small default sizes; the tests (and
papermill, if you use it) override them by inserting a cell right after it.
"""

from __future__ import annotations

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


LOAD_AND_VIEW = [
    ("md", """
# 01 · Load and view scans

Read a NIfTI file and a DICOM series into `medseg.Volume`s, inspect their geometry (RAS millimetres),
resample, and look at label overlays in the three planes. Everything runs on synthetic phantoms and
sample files shipped inside installed packages: nothing is downloaded.
"""),
    ("parameters", """
# Parameters (the tests override these with tiny values)
shape = (64, 64, 48)
spacing_mm = (1.2, 1.2, 2.5)
seed = 0
work_dir = "nb01_output"
"""),
    ("code", """
%matplotlib inline
import shutil
from pathlib import Path

import numpy as np

import medseg
from medseg.demo import list_samples, load_sample, make_phantom
from medseg.io import find_dicom_series, read_dicom_series
from medseg.io.dicom_write import write_dicom_series
from medseg.viz import montage, show_slices

work = Path(work_dir)
work.mkdir(parents=True, exist_ok=True)
"""),
    ("md", """
## A synthetic CT phantom, written and read back as NIfTI

`make_phantom` builds a CT-like abdomen (liver, spleen, kidneys; values in HU) with its label map.
`medseg.write` / `medseg.read` pick the format from the extension and write atomically.
"""),
    ("code", """
case = make_phantom(shape=shape, spacing_mm=spacing_mm, seed=seed, n_lesions=1)
medseg.write(case.image, work / "ct.nii.gz")
medseg.write(case.labels, work / "labels.nii.gz")

ct = medseg.read(work / "ct.nii.gz")
labels = medseg.read(work / "labels.nii.gz")
print(ct)
print("spacing_mm :", ct.spacing_mm)
print("origin_mm  :", ct.origin_mm)
print("orientation:", ct.orientation)
print("label names:", case.labels.labels)
assert ct.same_grid(case.image) and np.allclose(ct.array, case.image.array)
"""),
    ("md", """
## Geometry: voxel indices ↔ RAS millimetres

The affine maps voxel indices `(i, j, k)` to RAS+ millimetres (x to the patient's Right, y Anterior,
z Superior). Volumes carry it everywhere, so nothing assumes 1 mm voxels.
"""),
    ("code", """
corner_mm = ct.index_to_ras_mm(np.array([[0, 0, 0], [s - 1 for s in ct.shape]]))
print("first and last voxel centres (mm):\\n", corner_mm.round(2))
print("voxel volume (mL):", round(ct.voxel_volume_ml, 6))
liver_ml = float((labels.array == 1).sum()) * ct.voxel_volume_ml
print(f"liver volume: {liver_ml:.1f} mL")
"""),
    ("md", """
## The same scan as a DICOM series

DICOM stores positions in LPS; medseg converts to RAS inside `medseg.io` only. We write the phantom
as a CT series (one file per slice), discover it, read it back and check that the geometry survives.
"""),
    ("code", """
shutil.rmtree(work / "dicom", ignore_errors=True)  # the writer wants an empty folder
files = write_dicom_series(case.image, work / "dicom", series_description="phantom CT")
found = find_dicom_series(work / "dicom")
for series in found.series:
    print(series.uid, series.modality, series.description, series.n_frames, "frames")

dicom_ct = read_dicom_series(work / "dicom")
print(dicom_ct)
print("DICOM series UID:", dicom_ct.meta["dicom"]["SeriesInstanceUID"])
as_ras = dicom_ct.reorient("RAS")
print("same voxel grid as the NIfTI:", as_ras.same_grid(ct))
print("largest HU difference (integer storage):", float(np.abs(as_ras.array - ct.array).max()))
"""),
    ("md", """
## Resampling

`Volume.resample` keeps the field of view; label maps are never interpolated into new values
(per-label linear weights, then argmax).
"""),
    ("code", """
iso = ct.resample(spacing_mm=2.0)
iso_labels = labels.resample(spacing_mm=2.0)
print("before:", ct.shape, ct.spacing_mm, " after:", iso.shape, iso.spacing_mm)
print("label values after resampling:", np.unique(iso_labels.array).tolist())
iso_liver_ml = float((iso_labels.array == 1).sum()) * iso.voxel_volume_ml
print(f"liver volume at 2 mm: {iso_liver_ml:.1f} mL (at native spacing {liver_ml:.1f} mL)")
"""),
    ("md", """
## Overlays

`show_slices` draws axial, coronal and sagittal planes in radiological convention (patient's right on
the viewer's left), with pixels in their true millimetre proportions and a legend of label names.
"""),
    ("code", """
show_slices(ct, case.labels, title="phantom with reference labels")
"""),
    ("code", """
montage(ct, case.labels, plane="axial", n_slices=8, ncols=4)
"""),
    ("md", """
## Real sample data shipped in packages

`list_samples()` names each sample, the package that ships it and its licence; `load_sample` reads it
with the normal readers.
"""),
    ("code", """
for info in list_samples():
    print(f"{info.name:15s} {info.modality:3s} available={info.available!s:5s} {info.licence}")
"""),
    ("code", """
available = {info.name for info in list_samples() if info.available}
if "chest_ct" in available:
    chest = load_sample("chest_ct")
    print(chest.image)
    print("segments:", chest.labels.labels)
    fig = show_slices(chest.image, chest.labels, window="lung", title="slicerio chest CT")
else:
    fig = None
    print("chest_ct needs: pip install 'medseg[demo]'")
fig
"""),
]


NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "01_load_and_view.ipynb": LOAD_AND_VIEW,
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
