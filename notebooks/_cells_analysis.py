"""Cells of notebooks 03 (metrics and measurements) and 04 (anomaly detection).

Each notebook is a list of ``(kind, source)`` pairs; ``kind`` is "md", "code" or "parameters".
"""

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
from scipy import ndimage

import medseg
from medseg.demo import make_phantom
from medseg.measure import measure
from medseg.metrics import evaluate_folder, froc, lesion_metrics, lesion_summary
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
patch_size = (32, 32)
batch_size = 16
iterations = 1000  # about a minute on a laptop CPU
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
