"""Predict the same volumes with medseg's Predictor and nnU-Net v2's nnUNetPredictor; compare.

Seconds per case (model loaded once, no TTA, overlap/step 0.5), peak RSS, Dice; then a CT-sized volume.

Usage::

    python benchmarks/predict_vs_nnunet.py --data DATASET --nnunet-model FOLDER \
        [--medseg-bundle FOLDER] [--cases phantom_000 phantom_006] [--ct-budget-mb 1536]
        [--same-network] [--off-grid]

``DATASET`` is an MSD-layout folder (``medseg.demo.make_dataset``) holding the cases and their
reference labels; ``FOLDER`` an nnU-Net model folder (``benchmarks/_nnunet.train_nnunet`` or
``train_vs_nnunet.py`` make one) and a medseg bundle trained on the same data at the same
architecture size (DynUNet 32-64-128-256-320, patch 64^3, as ``train_vs_nnunet.py`` trains). Without
``--medseg-bundle`` an untrained bundle of that architecture is used: speed and memory are
comparable, Dice is not. Each side runs in its own process with 2 torch threads; the whole
process tree is sampled for peak RSS. Per-case seconds include reading the file, preprocessing,
inference, resampling back and writing the label NIfTI on both sides.

``--same-network`` (needs ``--medseg-bundle``): nnU-Net's ``nnUNetPredictor`` runs the medseg
bundle's own network (exported to TorchScript, loaded with ``torch.jit.load`` in the nnU-Net
venv, ``manual_initialization``) with the nnU-Net model folder's plans overridden to the bundle's
preprocessing (target spacing, patch size, CT clip/mean/std, axis order of the bundle's RAS grid
via the plans' ``transpose_forward``). Both predictors then use identical weights, so a Dice
difference between them comes from the pipelines (preprocessing, resampling, stitching) alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _nnunet  # noqa: E402

FILTERS = [32, 64, 128, 256, 320]
PATCH = [64, 64, 64]


# ------------------------------------------------------------ medseg worker (own process)
def _worker(spec: dict) -> None:
    import torch

    import medseg
    from medseg.inference import Predictor

    torch.set_num_threads(spec["threads"])
    start = time.perf_counter()
    predictor = Predictor.from_bundle(spec["bundle"], device="cpu", tta=False, overlap=0.5,
                                      precision=spec["precision"],
                                      memory_budget_mb=spec.get("budget_mb"), postprocess=False)
    load_seconds = time.perf_counter() - start
    seconds = {}
    for case_id, image, out in spec["cases"]:
        start = time.perf_counter()
        medseg.write(predictor(medseg.read(image)), out)
        seconds[case_id] = time.perf_counter() - start
    print(json.dumps({"load_seconds": load_seconds, "case_seconds": seconds,
                      "precision": predictor.precision}))


def _run_medseg(spec: dict, log_path: Path) -> tuple[dict, _nnunet.SampledRun]:
    command = [sys.executable, __file__, "--worker", json.dumps(spec)]
    run = _nnunet.run_sampled(command, log_path=log_path, name="medseg predict worker")
    return json.loads(log_path.read_text().strip().splitlines()[-1]), run


# ------------------------------------------- same network in nnU-Net's predictor (--same-network)
_SAME_NETWORK_SCRIPT = r"""
import json, sys, time
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
t0 = time.perf_counter()
network = torch.jit.load(args["network"], map_location="cpu").eval()
plans = PlansManager(args["plans"])
with open(args["dataset_json"]) as handle:
    dataset_json = json.load(handle)
predictor = nnUNetPredictor(tile_step_size=args["step_size"], use_gaussian=True, use_mirroring=False,
                            perform_everything_on_device=False, device=torch.device("cpu"),
                            allow_tqdm=False)
# nnU-Net keeps the checkpoint's weights apart from the network and loads them per case; a
# cloned state dict reproduces that (and its memory) for the TorchScript network.
weights = [{k: v.clone() for k, v in network.state_dict().items()}]
predictor.manual_initialization(network, plans, plans.get_configuration(args["configuration"]),
                                weights, dataset_json, "medseg_torchscript", None)
""" + _nnunet.TIMED_CASES_SCRIPT


def _nnunet_transpose(images: list[Path]) -> list[int]:
    """``transpose_forward`` that turns SimpleITK's (z, y, x) array of the files into RAS (i, j, k).

    The file's voxel axis ``f`` is SimpleITK array axis ``2 - f``; medseg reorients those voxel
    axes to RAS. nnU-Net can transpose but not flip, so every file must be stored without flips
    relative to RAS (true for ``medseg.demo`` datasets) and all in the same axis order.
    """
    import nibabel as nib

    perms = set()
    for path in images:
        ornt = nib.orientations.io_orientation(nib.load(path).affine)
        if (ornt[:, 1] < 0).any():
            raise _nnunet.NnunetError(
                f"{path}: voxel axes are flipped relative to RAS ({''.join(nib.aff2axcodes(nib.load(path).affine))}); "
                "--same-network needs files stored in RAS axis directions (nnU-Net's plans can "
                "transpose but not flip); reorient the dataset to RAS first")
        file_axis_of_ras = {int(ras): f for f, ras in enumerate(ornt[:, 0])}
        perms.add(tuple(2 - file_axis_of_ras[r] for r in range(3)))
    if len(perms) != 1:
        raise _nnunet.NnunetError(f"cases {[p.name for p in images]} differ in voxel axis order "
                                  f"({sorted(perms)}); --same-network needs one axis order")
    return list(perms.pop())


def _same_network_model(bundle: Path, nnunet_model: Path, images: list[Path], folder: Path, *,
                        configuration: str = "3d_fullres") -> dict:
    """Export the bundle's network and write nnU-Net plans that preprocess like the bundle."""
    from medseg.inference.bundle import load_bundle
    from medseg.training.export import export_model

    _, spec = load_bundle(bundle)
    norm = spec.normalization
    if norm.scheme != "ct" or spec.orientation != "RAS" or spec.in_channels != 1:
        raise _nnunet.NnunetError(f"{bundle}: --same-network maps only single-channel RAS bundles with "
                                  f"'ct' normalisation to nnU-Net's CTNormalization (got "
                                  f"{norm.scheme!r}, {spec.orientation}, {spec.in_channels} channels)")
    folder.mkdir(parents=True, exist_ok=True)
    network = export_model(bundle, format="torchscript", out=folder / "medseg_network.torchscript.pt")
    plans = json.loads((nnunet_model / "plans.json").read_text())
    dataset = json.loads((nnunet_model / "dataset.json").read_text())
    nn_labels = {int(v): k for k, v in dataset["labels"].items()}
    if nn_labels != spec.labels:
        raise _nnunet.NnunetError(f"labels differ: nnU-Net {nn_labels} vs bundle {spec.labels}; "
                                  "both outputs must be background + organs in the same order")
    transpose = _nnunet_transpose(images)
    plans["transpose_forward"] = transpose
    plans["transpose_backward"] = [transpose.index(i) for i in range(3)]
    config = plans["configurations"][configuration]
    config["spacing"] = [float(v) for v in spec.target_spacing_mm]  # in transposed (RAS) order
    config["patch_size"] = [int(v) for v in spec.patch_size]
    config["normalization_schemes"] = ["CTNormalization"]
    config["use_mask_for_norm"] = [False]
    plans["foreground_intensity_properties_per_channel"]["0"].update(
        percentile_00_5=norm.clip_low, percentile_99_5=norm.clip_high, mean=norm.mean, std=norm.std)
    plans_path, dataset_path = folder / "plans.json", folder / "dataset.json"
    plans_path.write_text(json.dumps(plans, indent=1))
    dataset_path.write_text(json.dumps(dataset, indent=1))
    return {"network": str(network), "plans": str(plans_path), "dataset_json": str(dataset_path),
            "configuration": configuration, "transpose_forward": transpose,
            "spacing": config["spacing"], "patch_size": config["patch_size"]}


def _predict_nnunet_same_network(model: dict, images: list[Path], out_dir: Path, *,
                                 threads: int) -> _nnunet.NnunetPrediction:
    """nnU-Net's predictor with medseg's TorchScript network; mirrors ``_nnunet.predict_nnunet``."""
    out = out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cases = [(_nnunet.case_id_from_path(f), str(Path(f).resolve()), str(out / _nnunet.case_id_from_path(f)))
             for f in images]
    record = out / "nnunet_predict_record.json"
    args = {**model, "threads": threads, "step_size": 0.5, "cases": cases, "record": str(record)}
    env = _nnunet.nnunet_env(out / ".nnunet_env", threads=threads)
    run = _nnunet.run_sampled([_nnunet.venv_python(), "-c", _SAME_NETWORK_SCRIPT, json.dumps(args)],
                              env=env, log_path=out / "nnunet_predict.log",
                              name="nnUNetPredictor (medseg network)")
    timings = json.loads(record.read_text())
    return _nnunet.NnunetPrediction(paths=[Path(c[2] + ".nii.gz") for c in cases],
                                    load_seconds=timings["load_seconds"],
                                    case_seconds=timings["case_seconds"],
                                    peak_rss_bytes=run.peak_rss_bytes)


def _agreement(a_paths: dict[str, Path], b_paths: dict[str, Path], labels: dict[int, str]) -> dict:
    """Mean Dice between two sides' label maps and the fraction of voxels whose labels differ."""
    import numpy as np

    import medseg
    from medseg.metrics import evaluate

    dice, differ, total = [], 0, 0
    for case_id in sorted(a_paths):
        a, b = medseg.read(a_paths[case_id], kind="labels"), medseg.read(b_paths[case_id], kind="labels")
        rows = evaluate(a, b, labels={k: v for k, v in labels.items() if k}, metrics=["dice"],
                        case_id=case_id)
        dice.extend(rows["dice"].tolist())
        differ += int(np.count_nonzero(np.asarray(a.array) != np.asarray(b.array)))
        total += int(np.asarray(a.array).size)
    return {"dice_between": float(np.nanmean(dice)), "voxels_differing": differ, "voxels": total}


def _untrained_bundle(folder: Path, labels: dict[int, str]) -> Path:
    import torch

    from medseg.data.preprocess import NormalizationSpec
    from medseg.inference.bundle import BundleSpec, save_bundle
    from medseg.models import create_model

    torch.manual_seed(0)
    options = dict(spatial_dims=3, in_channels=1, out_channels=len(labels), patch_size=PATCH,
                   filters=FILTERS)
    spec = BundleSpec(model_name="dynunet", model_options=options, labels=labels,
                      patch_size=tuple(PATCH), target_spacing_mm=(1.5, 1.5, 2.0),
                      normalization=NormalizationSpec("ct", -1000.0, 1000.0, 0.0, 200.0))
    return save_bundle(folder, model=create_model("dynunet", **options), spec=spec)


def _dice(pred_paths: dict[str, Path], ref_paths: dict[str, Path], labels: dict[int, str]) -> float:
    import medseg
    from medseg.metrics import evaluate

    rows = [evaluate(medseg.read(pred_paths[c], kind="labels"), medseg.read(ref_paths[c], kind="labels"),
                     labels={k: v for k, v in labels.items() if k}, metrics=["dice"], case_id=c)
            for c in sorted(ref_paths)]
    import pandas as pd

    return float(pd.concat(rows)["dice"].mean())


OFF_GRID_SPACING_MM = (1.2, 1.2, 1.6)
OFF_GRID_PAD_VOXELS = (16, 16, 8)


def _off_grid_cases(images: dict[str, Path], refs: dict[str, Path],
                    folder: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """Copies of the cases padded with air and resampled off the network grid.

    Each image gets ``OFF_GRID_PAD_VOXELS`` of -1000 HU on every side (48 x 48 x 32 mm more field
    of view at the phantoms' 1.5 x 1.5 x 2.0 mm) and is resampled (cubic; labels nearest) to
    ``OFF_GRID_SPACING_MM``: a 64^3 phantom becomes 120 x 120 x 100 voxels, so a predictor must
    resample to the network grid (96 x 96 x 80), stitch 8 windows and resample back.
    """
    import numpy as np

    import medseg
    from medseg.geometry import axis_codes
    from medseg.resample import resample_to_spacing
    from medseg.volume import Volume

    out_images, out_refs = {}, {}
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    pad = [(p, p) for p in OFF_GRID_PAD_VOXELS]
    for case_id in images:
        for source, sub, fill, order, target in ((images[case_id], "imagesTr", -1000.0, 3, out_images),
                                                  (refs[case_id], "labelsTr", 0, 0, out_refs)):
            kind = "labels" if sub == "labelsTr" else "image"
            volume = medseg.read(source, kind=kind)
            if axis_codes(volume.affine) != ("R", "A", "S"):
                raise _nnunet.NnunetError(f"{source}: --off-grid pads RAS-stored phantoms only")
            origin = np.asarray(volume.origin_mm) - np.asarray(OFF_GRID_PAD_VOXELS) * volume.spacing_mm
            padded = Volume.from_array(np.pad(volume.array, pad, constant_values=fill),
                                       spacing_mm=volume.spacing_mm, origin_mm=origin, kind=kind,
                                       labels=volume.labels)
            path = folder / sub / f"{case_id}.nii.gz"
            medseg.write(resample_to_spacing(padded, spacing_mm=OFF_GRID_SPACING_MM, order=order), path)
            target[case_id] = path
    return out_images, out_refs


def _ct_sized_case(folder: Path) -> tuple[Path, Path]:
    """A 512x512x300 CT at 0.7x0.7x2.5 mm: a phantom built at 128^2 in-plane, zoomed x4."""
    import numpy as np
    from scipy import ndimage

    import medseg
    from medseg.demo import make_phantom
    from medseg.volume import Volume

    case = make_phantom(shape=(128, 128, 300), spacing_mm=(2.8, 2.8, 2.5), seed=99)
    image = ndimage.zoom(case.image.array, (4, 4, 1), order=1).astype(np.int16)
    labels = ndimage.zoom(case.labels.array, (4, 4, 1), order=0)
    origin = np.asarray(case.image.origin_mm) - np.array([1.05, 1.05, 0.0])
    paths = folder / "ct512_image.nii.gz", folder / "ct512_labels.nii.gz"
    medseg.write(Volume.from_array(image, spacing_mm=(0.7, 0.7, 2.5), origin_mm=origin), paths[0])
    medseg.write(Volume.from_array(labels, spacing_mm=(0.7, 0.7, 2.5), origin_mm=origin,
                                   kind="labels", labels=case.labels.labels), paths[1])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="MSD-layout dataset with the cases")
    parser.add_argument("--nnunet-model", type=Path, help="nnU-Net model folder")
    parser.add_argument("--medseg-bundle", type=Path, default=None)
    parser.add_argument("--cases", nargs="*", default=None, help="case ids (default: first 4)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of all three runs")
    parser.add_argument("--ct-budget-mb", type=float, default=1536.0,
                        help="memory_budget_mb for the 512x512x300 volume (0: skip it)")
    parser.add_argument("--ct-bundle", type=Path, default=None,
                        help="bundle for the 512x512x300 volume (default: the medseg bundle)")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--same-network", action="store_true",
                        help="nnU-Net's predictor runs the medseg bundle's network (needs --medseg-bundle)")
    parser.add_argument("--off-grid", action="store_true",
                        help="predict padded copies of the cases resampled to 1.2x1.2x1.6 mm instead "
                             "(exercises resampling both ways and window stitching)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(json.loads(args.worker))
        return
    if not args.data or not args.nnunet_model:
        parser.error("--data and --nnunet-model are required")
    if args.same_network and not args.medseg_bundle:
        parser.error("--same-network needs --medseg-bundle (the trained network both predictors run)")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="predict_vs_nnunet_"))
    work.mkdir(parents=True, exist_ok=True)
    spec = json.loads((args.data / "dataset.json").read_text())
    labels = {int(k): v for k, v in spec["labels"].items()}
    ids = args.cases or sorted(_nnunet.case_id_from_path(e["image"]) for e in spec["training"])[:4]
    images = {c: args.data / "imagesTr" / f"{c}.nii.gz" for c in ids}
    refs = {c: args.data / "labelsTr" / f"{c}.nii.gz" for c in ids}
    if args.off_grid:
        images, refs = _off_grid_cases(images, refs, work / "off_grid_data")
    bundle = args.medseg_bundle or _untrained_bundle(work / "untrained_bundle", labels)
    results: dict = {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "cases": ids,
                     "medseg_bundle": str(bundle), "trained_medseg": args.medseg_bundle is not None,
                     "nnunet_model": str(args.nnunet_model), "same_network": args.same_network,
                     "off_grid": args.off_grid}
    nn_name = "nnU-Net (medseg net)" if args.same_network else "nnU-Net"
    if args.same_network:
        same_model = _same_network_model(bundle, args.nnunet_model, list(images.values()),
                                         work / "same_network_model")
        results["same_network_model"] = same_model
        print("nnU-Net runs medseg's network:", json.dumps(same_model), flush=True)
    print(f"work dir {work}; cases {ids}", flush=True)

    sides: dict = {}
    outputs: dict[str, dict[str, Path]] = {}  # last round's label files per side

    def add(name: str, seconds: dict, load: float, rss: float, dice: float, **extra) -> None:
        side = sides.setdefault(name, {"case_seconds": {}, "load_seconds": [], "peak_rss_mib": 0.0,
                                       "dice": dice, **extra})
        for case_id, value in seconds.items():
            side["case_seconds"].setdefault(case_id, []).append(value)
        side["load_seconds"].append(load)
        side["peak_rss_mib"] = max(side["peak_rss_mib"], rss / 2**20)
        print(name, f"round {len(side['load_seconds'])}", json.dumps(seconds), f"dice {dice:.4f}",
              flush=True)

    # Rounds alternate the three runs so that load from other jobs hits all of them alike.
    for round_index in range(args.rounds):
        for name, precision in (("medseg bf16", "auto"), ("medseg fp32", "fp32")):
            out = work / f"{name.replace(' ', '_')}_{round_index}"
            out.mkdir(exist_ok=True)
            cases = [(c, str(images[c]), str(out / f"{c}.nii.gz")) for c in ids]
            record, run = _run_medseg({"bundle": str(bundle), "precision": precision,
                                       "threads": args.threads, "cases": cases},
                                      work / f"{out.name}.log")
            outputs[name] = {c: out / f"{c}.nii.gz" for c in ids}
            add(name, record["case_seconds"], record["load_seconds"], run.peak_rss_bytes,
                _dice({c: out / f"{c}.nii.gz" for c in ids}, refs, labels),
                precision=record["precision"])
        if args.same_network:
            prediction = _predict_nnunet_same_network(same_model, list(images.values()),
                                                      work / f"nnunet_same_{round_index}",
                                                      threads=args.threads)
        else:
            prediction = _nnunet.predict_nnunet(args.nnunet_model, list(images.values()),
                                                work / f"nnunet_{round_index}", threads=args.threads)
        outputs[nn_name] = dict(zip(ids, prediction.paths))
        add(nn_name, prediction.case_seconds, prediction.load_seconds, prediction.peak_rss_bytes,
            _dice(outputs[nn_name], refs, labels))
    results["sides"] = sides
    if args.same_network:
        results["agreement_with_nnunet"] = {
            name: {**_agreement(outputs[name], outputs[nn_name], labels),
                   "dice_difference": sides[name]["dice"] - sides[nn_name]["dice"]}
            for name in ("medseg bf16", "medseg fp32")}

    if args.ct_budget_mb > 0:
        image, reference = _ct_sized_case(work)
        out = work / "ct512"
        out.mkdir(exist_ok=True)
        ct_bundle = args.ct_bundle or bundle
        results["ct512_bundle"] = str(ct_bundle)
        record, run = _run_medseg({"bundle": str(ct_bundle), "precision": "auto", "threads": args.threads,
                                   "budget_mb": args.ct_budget_mb,
                                   "cases": [("ct512", str(image), str(out / "ct512.nii.gz"))]},
                                  work / "ct512.log")
        results["ct512"] = {"seconds": record["case_seconds"]["ct512"], "budget_mb": args.ct_budget_mb,
                            "peak_rss_mib": run.peak_rss_bytes / 2**20,
                            "dice": _dice({"ct512": out / "ct512.nii.gz"}, {"ct512": reference}, labels)}
        print("ct512", json.dumps(results["ct512"]), flush=True)
    _report(results)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"results: {work / 'results.json'}")


def _report(results: dict) -> None:
    sides = results["sides"]
    if not sides:
        return _report_ct(results)
    def median(name: str) -> float:
        return statistics.median(v for values in sides[name]["case_seconds"].values() for v in values)

    nn_name = "nnU-Net (medseg net)" if results.get("same_network") else "nnU-Net"
    nn = median(nn_name)
    print("\n| predictor | median s/case | per case | peak RSS MiB | mean Dice |")
    print("|---|---|---|---|---|")
    for name, side in sides.items():
        seconds = [v for values in side["case_seconds"].values() for v in values]
        print(f"| {name} | {statistics.median(seconds):.2f} | "
              f"{', '.join(f'{s:.1f}' for s in seconds)} | {side['peak_rss_mib']:.0f} | "
              f"{side['dice']:.4f} |")
    for name in ("medseg bf16", "medseg fp32"):
        ratio = nn / median(name)
        print(f"speed-up {name} vs {nn_name}: {ratio:.2f}x, peak RSS "
              f"{sides[name]['peak_rss_mib'] / sides[nn_name]['peak_rss_mib']:.2f}x")
    for name, agree in results.get("agreement_with_nnunet", {}).items():
        print(f"{name} vs {nn_name} (same weights): Dice difference to reference "
              f"{agree['dice_difference']:+.4f}, Dice between the two {agree['dice_between']:.4f}, "
              f"{agree['voxels_differing']} of {agree['voxels']} voxels labelled differently")
    _report_ct(results)


def _report_ct(results: dict) -> None:
    if "ct512" in results:
        ct = results["ct512"]
        print(f"512x512x300 CT, memory_budget_mb={ct['budget_mb']:.0f}: {ct['seconds']:.1f} s, "
              f"peak RSS {ct['peak_rss_mib']:.0f} MiB, Dice {ct['dice']:.4f}")


if __name__ == "__main__":
    main()
