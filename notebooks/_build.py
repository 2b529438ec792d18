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


METRICS_AND_MEASUREMENTS = [
    ("md", """
# 03 · Metrics and measurements

Evaluate a cohort of predictions against references (Dice, HD95, ASSD, NSD), score lesions one by one
(F1, FROC) and measure structures (volumes in mL, diameters, HU statistics). The predictions here are
controlled perturbations of synthetic phantoms, so every number has an expected value.
"""),
    ("parameters", """
# Parameters (the tests override these with tiny values)
n_cases = 4
shape = (64, 64, 48)
spacing_mm = (1.5, 1.5, 3.0)
seed = 0
work_dir = "nb03_output"
"""),
    ("code", """
%matplotlib inline
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

import medseg
from medseg.demo import make_phantom
from medseg.measure import measure
from medseg.metrics import evaluate, evaluate_folder, froc, lesion_metrics, lesion_summary
from medseg.viz import new_figure, plot_metric_boxes, show_anomaly_map, show_slices

work = Path(work_dir)
(work / "ref").mkdir(parents=True, exist_ok=True)
(work / "pred").mkdir(parents=True, exist_ok=True)
"""),
    ("md", """
## A cohort with known errors

Case 0 is predicted perfectly; case 1 has the liver grown by one voxel; case 2 misses the spleen;
case 3 has the kidneys shifted by two voxels along the first axis (so HD95 of the kidney should be
close to 2 x the first spacing). Further cases repeat the pattern with other seeds.
"""),
    ("code", """
def perturb(labels: np.ndarray, kind: int) -> np.ndarray:
    out = labels.copy()
    if kind == 1:
        grown = ndimage.binary_dilation(labels == 1)
        out[grown & (labels == 0)] = 1
    elif kind == 2:
        out[labels == 2] = 0
    elif kind == 3:
        out[labels == 3] = 0
        out[np.roll(labels == 3, 2, axis=0)] = 3
    return out


cases = {}
for index in range(n_cases):
    case = make_phantom(shape=shape, spacing_mm=spacing_mm, seed=seed + index)
    case_id = f"case_{index:02d}"
    cases[case_id] = case
    prediction = case.labels.with_array(perturb(case.labels.array, index % 4))
    medseg.write(case.labels, work / "ref" / f"{case_id}.nii.gz")
    medseg.write(prediction, work / "pred" / f"{case_id}.nii.gz")

table = evaluate_folder(work / "pred", work / "ref", workers=1)
table[["case_id", "label", "dice", "hd95_mm", "assd_mm", "nsd_1mm", "volume_ref_ml", "volume_pred_ml"]]
"""),
    ("code", """
perfect = table[table["case_id"] == "case_00"]
assert np.allclose(perfect["dice"], 1.0) and np.allclose(perfect["hd95_mm"], 0.0)
if n_cases > 3:
    kidney = table[(table["case_id"] == "case_03") & (table["label"] == 3)]
    print(f"shifted kidney: HD95 = {float(kidney['hd95_mm'].iloc[0]):.2f} mm "
          f"(shift = {2 * spacing_mm[0]:.2f} mm)")
table.groupby("label")[["dice", "hd95_mm", "nsd_1mm"]].agg(["mean", "std"])
"""),
    ("code", """
if "label_name" not in table.columns:
    table["label_name"] = table["label"].map({1: "liver", 2: "spleen", 3: "kidney"})
plot_metric_boxes(table)
"""),
    ("md", """
## Lesion-wise detection

Three spherical "lesions" of known radius inside the liver of a phantom (40 HU darker than liver);
the "prediction" keeps two of them (one false negative) and adds a sphere in the spleen (one false
positive). Lesions are matched one to one.
"""),
    ("code", """
base = make_phantom(shape=shape, spacing_mm=spacing_mm, seed=seed)
grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
points_mm = base.image.index_to_ras_mm(grid).reshape(*shape, 3)


def sphere(centre_mm, radius_mm):
    return np.sum((points_mm - np.asarray(centre_mm)) ** 2, axis=-1) <= radius_mm ** 2


liver_centre = points_mm[base.labels.array == 1].mean(axis=0)
spleen_centre = points_mm[base.labels.array == 2].mean(axis=0)
radii_mm = [6.0, 5.0, 4.0]
offsets_mm = [(-9.0, 0.0, -12.0), (9.0, 0.0, 12.0), (0.0, 0.0, 0.0)]  # >= 5 mm apart
spheres = [sphere(liver_centre + np.asarray(o), r) for o, r in zip(offsets_mm, radii_mm)]
reference_lesions = base.labels.with_array(np.any(spheres, axis=0).astype(np.uint8),
                                           labels={1: "lesion"})
image = base.image.with_array(np.where(reference_lesions.array > 0, base.image.array - 40.0,
                                       base.image.array))
fake = sphere(spleen_centre, 4.0)
prediction = reference_lesions.with_array((spheres[1] | spheres[2] | fake).astype(np.uint8))

lesions = lesion_metrics(prediction, reference_lesions, case_id="lesion_case")
summary = lesion_summary(prediction, reference_lesions)
print({k: summary[k] for k in ("tp", "fp", "fn", "sensitivity", "precision", "f1")})
lesions
"""),
    ("code", """
# Expected: two of three reference lesions found, one missed, one false positive.
assert (summary["tp"], summary["fn"], summary["fp"]) == (2, 1, 1)
"""),
    ("md", """
## FROC from a probability map

A "probability" map with known levels: 0.9 on the lesions the prediction found, 0.3 on the one it
missed, 0.6 on the false positive. Raising the threshold first loses the weak lesion, then the false
positive, so each FROC point is known in advance.
"""),
    ("code", """
prob = np.zeros(shape, dtype=np.float32)
prob[spheres[1] | spheres[2]] = 0.9
prob[spheres[0]] = 0.3
prob[fake] = 0.6
probability = image.with_array(prob)
curve = froc(probability, reference_lesions, thresholds=[0.2, 0.5, 0.7])
fig = new_figure((4, 3))
ax = fig.add_subplot()
ax.plot(curve["fp_per_case"], curve["sensitivity"], marker="o")
ax.set_xlabel("false positives per case")
ax.set_ylabel("lesion sensitivity")
ax.set_ylim(0, 1.05)
display(curve)
fig
"""),
    ("code", """
assert np.allclose(curve["sensitivity"], [1.0, 2 / 3, 2 / 3])
assert np.allclose(curve["fp_per_case"], [1.0, 1.0, 0.0])
"""),
    ("code", """
show_anomaly_map(image, probability, reference=reference_lesions)
"""),
    ("md", """
## Measurements

`measure` gives one row per structure (or per connected component) with units in the column names.
The lesions are spheres of known radius, so their volumes can be checked against 4/3·π·r³ (up to
voxelisation, which is coarse at the tiny test sizes).
"""),
    ("code", """
organs = measure(base.labels, image)
organs
"""),
    ("code", """
per_lesion = measure(reference_lesions, image, per_component=True)
expected_ml = sorted(4 / 3 * np.pi * r ** 3 / 1000 for r in radii_mm)
measured_ml = sorted(per_lesion["volume_ml"])
print("measured volume_ml:", np.round(measured_ml, 3).tolist())
print("sphere volume_ml:  ", np.round(expected_ml, 3).tolist())
print("measured max_diameter_mm:", np.round(sorted(per_lesion["max_diameter_mm"]), 1).tolist(),
      " sphere diameters:", sorted(2 * r for r in radii_mm))
per_lesion
"""),
    ("code", """
show_slices(image, base.labels, prediction=reference_lesions, centre_mm=liver_centre,
            title="organs (top) and lesions (bottom)")
"""),
]


ANOMALY_DETECTION = [
    ("md", """
# 04 · Anomaly detection

Learn what normal scans look like and flag what does not fit: a denoising network is trained on
lesion-free phantoms only, then scores test scans with inserted lesions. Its voxel-wise AUROC/AUPRC is
compared with a per-voxel z-score baseline, and the maps are drawn over the scans.
"""),
    ("parameters", """
# Parameters (the tests override these with tiny values)
n_train = 8
n_val = 2
shape = (48, 48, 48)
spacing_mm = (2.0, 2.0, 2.5)
patch_size = (48, 48)
batch_size = 16
iterations = 200
seed = 0
work_dir = "nb04_output"
"""),
    ("code", """
%matplotlib inline
from pathlib import Path

import pandas as pd

from medseg.anomaly import (
    DenoisingConfig,
    ZScoreBaseline,
    make_anomaly_benchmark,
    train_anomaly_model,
    voxel_scores,
)
from medseg.viz import show_anomaly_map

work = Path(work_dir)
work.mkdir(parents=True, exist_ok=True)
"""),
    ("md", """
## Normal scans for training, test scans with lesions

All phantoms share one grid; the test set has two cases with inserted lesions and one without.
"""),
    ("code", """
bench = make_anomaly_benchmark(n_train=n_train, n_val=n_val, n_test_lesion=2, n_test_normal=1,
                               shape=shape, spacing_mm=spacing_mm, seed=seed)
print(len(bench.train), "normal training scans,", len(bench.val), "normal validation scans")
for case in bench.test:
    print(case.case_id, "lesions:", len(case.table))
bench.test[0].table
"""),
    ("md", """
## Train the detector on normal scans only

The validation scans (also normal) set the map threshold at a target false-positive rate.
"""),
    ("code", """
config = DenoisingConfig(patch_size=tuple(patch_size), batch_size=batch_size,
                         iterations=iterations, seed=seed)
scorer = train_anomaly_model(bench.train, out_dir=work / "anomaly_model", config=config,
                             val=bench.val)
print("threshold:", round(scorer.threshold, 4))
"""),
    ("code", """
baseline = ZScoreBaseline().fit(bench.train, val=bench.val)
results = [scorer(case.image, case_id=case.case_id) for case in bench.test]
base_results = [baseline.score(case.image, case_id=case.case_id) for case in bench.test]
truths = [case.lesion_mask for case in bench.test]
comparison = pd.DataFrame([
    {"method": "denoising model", **voxel_scores([r.anomaly_map for r in results], truths,
                                                 [r.body for r in results])},
    {"method": "z-score baseline", **voxel_scores([r.anomaly_map for r in base_results], truths,
                                                  [r.body for r in base_results])},
])
comparison
"""),
    ("code", """
pd.DataFrame([{"case_id": r.case_id, "lesions": len(c.table), "case_score": r.case_score,
               "normal_percentile": scorer.case_percentile(r.case_score)}
              for r, c in zip(results, bench.test)])
"""),
    ("code", """
case, result = bench.test[0], results[0]
show_anomaly_map(case.image, result.anomaly_map, reference=case.lesion_mask,
                 threshold=result.threshold)
"""),
]


NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "01_load_and_view.ipynb": LOAD_AND_VIEW,
    "02_train_segmentation.ipynb": TRAIN_SEGMENTATION,
    "03_metrics_and_measurements.ipynb": METRICS_AND_MEASUREMENTS,
    "04_anomaly_detection.ipynb": ANOMALY_DETECTION,
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
