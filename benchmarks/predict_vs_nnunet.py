"""Predict the same volumes with medseg's Predictor and nnU-Net v2's nnUNetPredictor; compare.

Seconds per case (model loaded once, no TTA, overlap/step 0.5), peak RSS, Dice; then a CT-sized volume.

Usage::

    python benchmarks/predict_vs_nnunet.py --data DATASET --nnunet-model FOLDER \
        [--medseg-bundle FOLDER] [--cases phantom_000 phantom_006] [--ct-budget-mb 1536]

``DATASET`` is an MSD-layout folder (``medseg.demo.make_dataset``) holding the cases and their
reference labels; ``FOLDER`` an nnU-Net model folder (``benchmarks/_nnunet.train_nnunet`` or
``train_vs_nnunet.py`` make one) and a medseg bundle trained on the same data at the same
architecture size (DynUNet 32-64-128-256-320, patch 64^3, as ``train_vs_nnunet.py`` trains). Without
``--medseg-bundle`` an untrained bundle of that architecture is used: speed and memory are
comparable, Dice is not. Each side runs in its own process with 2 torch threads; the whole
process tree is sampled for peak RSS. Per-case seconds include reading the file, preprocessing,
inference, resampling back and writing the label NIfTI on both sides.
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
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(json.loads(args.worker))
        return
    if not args.data or not args.nnunet_model:
        parser.error("--data and --nnunet-model are required")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="predict_vs_nnunet_"))
    work.mkdir(parents=True, exist_ok=True)
    spec = json.loads((args.data / "dataset.json").read_text())
    labels = {int(k): v for k, v in spec["labels"].items()}
    ids = args.cases or sorted(_nnunet.case_id_from_path(e["image"]) for e in spec["training"])[:4]
    images = {c: args.data / "imagesTr" / f"{c}.nii.gz" for c in ids}
    refs = {c: args.data / "labelsTr" / f"{c}.nii.gz" for c in ids}
    bundle = args.medseg_bundle or _untrained_bundle(work / "untrained_bundle", labels)
    results: dict = {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "cases": ids,
                     "medseg_bundle": str(bundle), "trained_medseg": args.medseg_bundle is not None,
                     "nnunet_model": str(args.nnunet_model)}
    print(f"work dir {work}; cases {ids}", flush=True)

    sides: dict = {}

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
            add(name, record["case_seconds"], record["load_seconds"], run.peak_rss_bytes,
                _dice({c: out / f"{c}.nii.gz" for c in ids}, refs, labels),
                precision=record["precision"])
        prediction = _nnunet.predict_nnunet(args.nnunet_model, list(images.values()),
                                            work / f"nnunet_{round_index}", threads=args.threads)
        add("nnU-Net", prediction.case_seconds, prediction.load_seconds, prediction.peak_rss_bytes,
            _dice(dict(zip(ids, prediction.paths)), refs, labels))
    results["sides"] = sides

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

    nn = median("nnU-Net")
    print("\n| predictor | median s/case | per case | peak RSS MiB | mean Dice |")
    print("|---|---|---|---|---|")
    for name, side in sides.items():
        seconds = [v for values in side["case_seconds"].values() for v in values]
        print(f"| {name} | {statistics.median(seconds):.2f} | "
              f"{', '.join(f'{s:.1f}' for s in seconds)} | {side['peak_rss_mib']:.0f} | "
              f"{side['dice']:.4f} |")
    for name in ("medseg bf16", "medseg fp32"):
        ratio = nn / median(name)
        print(f"speed-up {name} vs nnU-Net: {ratio:.2f}x")
    _report_ct(results)


def _report_ct(results: dict) -> None:
    if "ct512" in results:
        ct = results["ct512"]
        print(f"512x512x300 CT, memory_budget_mb={ct['budget_mb']:.0f}: {ct['seconds']:.1f} s, "
              f"peak RSS {ct['peak_rss_mib']:.0f} MiB, Dice {ct['dice']:.4f}")


if __name__ == "__main__":
    main()
