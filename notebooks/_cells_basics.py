"""Cells of notebooks 01 (load and view) and 02 (train a segmentation model).

Each notebook is a list of ``(kind, source)`` pairs; ``kind`` is "md", "code" or "parameters".
"""

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


TRAIN_SEGMENTATION = [
    ("md", """
# 02 · Train a segmentation model

Dataset -> fingerprint -> plan -> train -> predict -> evaluate, on a synthetic CT dataset in the Medical
Segmentation Decathlon layout. The same calls work on a real MSD or nnU-Net v2 raw dataset folder.
"""),
    ("parameters", """
# Parameters (the tests override these with tiny values)
n_cases = 10
shape = (48, 48, 48)
spacing_mm = (2.0, 2.0, 2.5)
config = "tiny3d"       # a preset name from configs/ or a YAML path
epochs = None           # None: the config's epochs
iterations_per_epoch = None  # None: the config's value
max_minutes = 3.0
seed = 0
work_dir = "nb02_output"
"""),
    ("code", """
%matplotlib inline
import dataclasses
import shutil
from pathlib import Path

import medseg
from medseg.data import compute_fingerprint, load_dataset, make_plan, save_plan
from medseg.demo import make_dataset
from medseg.inference import Predictor
from medseg.metrics import evaluate
from medseg.training import resolve_config, train
from medseg.viz import plot_training_curves, show_slices

work = Path(work_dir)
work.mkdir(parents=True, exist_ok=True)
"""),
    ("md", """
## Dataset

`make_dataset` writes `imagesTr/`, `labelsTr/`, `dataset.json` (and one held-out case in
`imagesTs/`/`labelsTs/`); `load_dataset` reads and checks the layout.
"""),
    ("code", """
root = make_dataset(work / "data", n_cases=n_cases, n_test=1, shape=shape, spacing_mm=spacing_mm,
                    seed=seed)
dataset = load_dataset(root)
print(len(dataset.cases), "training cases; labels:", dataset.labels, "; modality:", dataset.modality)
print([case.case_id for case in dataset.cases])
"""),
    ("md", """
## Fingerprint and plan

The fingerprint collects spacings, shapes and foreground intensities; the plan derives the target
spacing, patch size, batch size, normalisation and network topology from it (nnU-Net's recipe).
"""),
    ("code", """
fingerprint = compute_fingerprint(dataset, workers=1)
plan = make_plan(fingerprint, config="3d")
print("target spacing (mm):", plan.target_spacing_mm)
print("patch size:", plan.patch_size, " batch size:", plan.batch_size)
print("normalisation:", plan.normalization)
print("network:", plan.model_name)
save_plan(plan, work / "plan.yaml")
print((work / "plan.yaml").read_text()[:600])
"""),
    ("md", """
## Train

A small configuration for CPU. Configs are frozen dataclasses read strictly from YAML; change a copy
with `dataclasses.replace`. The run folder keeps the plan, config, splits, checkpoints, a
`metrics.csv` and the model `bundle/`.
"""),
    ("code", """
train_config, source = resolve_config(config)
if iterations_per_epoch:
    train_config = dataclasses.replace(train_config, iterations_per_epoch=iterations_per_epoch)
print(source, "->", train_config.model_name, train_config.patch_size, train_config.epochs, "epochs")
shutil.rmtree(work / "run", ignore_errors=True)  # a new run each time this notebook runs
result = train(dataset, out_dir=work / "run", config=train_config, plan=plan, epochs=epochs,
               max_minutes=max_minutes, seed=seed)
print("run folder:", result.run_dir)
print("best validation Dice:", round(float(result.best_val_dice), 3))
result.history
"""),
    ("code", """
plot_training_curves(result.history)
"""),
    ("md", """
## Predict the held-out case and evaluate

`Predictor` loads the bundle once; it preprocesses like training did and returns labels on the input's
own voxel grid.
"""),
    ("code", """
predictor = Predictor.from_bundle(result.bundle_dir, device="cpu")
case_id = sorted((root / "imagesTs").iterdir())[0].name.removesuffix(".nii.gz")
image = medseg.read(root / "imagesTs" / f"{case_id}.nii.gz")
reference = medseg.read(root / "labelsTs" / f"{case_id}.nii.gz", kind="labels")
prediction = predictor(image)
print(prediction)
scores = evaluate(prediction, reference, labels={1: "liver", 2: "spleen", 3: "kidney"},
                  case_id=case_id)
scores
"""),
    ("code", """
show_slices(image, reference.replace(labels=prediction.labels), prediction=prediction,
            title=f"{case_id}: reference (top) and prediction (bottom)")
"""),
]
