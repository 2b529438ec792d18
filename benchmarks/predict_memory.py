"""Peak memory of one CT-sized prediction (512x512x600) with and without ``memory_budget_mb``.

Each run is its own process: read NIfTI + preprocess + predict + resample back + write labels.

Usage::

    python benchmarks/predict_memory.py [--bundle FOLDER] [--budgets 0 1024 768] [--threads 2]

Without ``--bundle`` the test suite's tiny ``unet_small`` bundle (tests/inference/_tiny_bundle.py,
3x3x4 mm grid, patch 24^3) is trained first (~20 s on a quiet 2-core CPU). The CT is a phantom
built at 128x128 in-plane and zoomed x4 to 512x512x600 voxels of 0.7x0.7x1.25 mm (int16).

Reported per budget (0 = none): seconds (read / predict / write), whole-process peak RSS sampled
from outside, and from inside the worker: the interpreter + torch + model baseline (after a
warm-up prediction on a 48^3 phantom, as in a batch serving many cases), the input array, and
``predict alloc``: the peak RSS during ``Predictor.predict`` (VmHWM reset through
/proc/self/clear_refs just before it) minus the RSS just before it (baseline + input). That last
figure is what ``memory_budget_mb`` bounds: everything predict allocates, output label map
included, input volume excluded. Labels are compared voxel by voxel with the unbudgeted run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests" / "inference"))
_MIB = 2**20


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _rss_mib() -> float:
    return _status_kib("VmRSS") / 1024


def _worker(spec: dict) -> None:
    import torch

    import medseg
    from medseg.inference import Predictor

    torch.set_num_threads(spec["threads"])
    predictor = Predictor.from_bundle(spec["bundle"], device="cpu", precision=spec["precision"],
                                      memory_budget_mb=spec["budget_mb"] or None, postprocess=False)
    # Warm up on a small phantom, as a batch serving many cases is: torch keeps ~50 MiB of
    # buffers after its first forward pass, which belong to the baseline, not to one case.
    from medseg.demo import make_phantom

    predictor(make_phantom(shape=(48, 48, 48), spacing_mm=(3.0, 3.0, 4.0), seed=1).image)
    baseline = _rss_mib()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    start = time.perf_counter()
    image = medseg.read(spec["image"])
    read_s = time.perf_counter() - start
    read_peak = _status_kib("VmHWM") / 1024
    plan = predictor.memory_plan(image)
    before = _rss_mib()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    start = time.perf_counter()
    labels = predictor(image)
    predict_s = time.perf_counter() - start
    predict_peak = _status_kib("VmHWM") / 1024
    start = time.perf_counter()
    medseg.write(labels, spec["out"])
    write_s = time.perf_counter() - start
    print(json.dumps({
        "read_s": read_s, "predict_s": predict_s, "write_s": write_s,
        "baseline_mib": baseline, "input_mib": image.array.nbytes / _MIB,
        "before_predict_mib": before, "predict_peak_mib": predict_peak,
        "predict_alloc_mib": predict_peak - before, "plan_estimate_mib": plan.estimated_peak_mb,
        "plan": {"network_slab_depth": plan.network_slab_depth,
                 "output_slab_depth": plan.output_slab_depth, "store_dtype": plan.store_dtype,
                 "preprocess_working_mb": plan.preprocess_working_mb},
        "read_peak_mib": read_peak, "precision": predictor.precision,
    }))


def _ct_case(path: Path, slices: int) -> Path:
    """512x512xN CT at 0.7x0.7x1.25 mm (int16): a phantom at 128^2 in-plane, zoomed x4."""
    import numpy as np
    from scipy import ndimage

    import medseg
    from medseg.demo import make_phantom
    from medseg.volume import Volume

    case = make_phantom(shape=(128, 128, slices), spacing_mm=(2.8, 2.8, 1.25), seed=99)
    image = ndimage.zoom(case.image.array, (4, 4, 1), order=1, output=np.float32)
    array = np.round(image).astype(np.int16)
    del image
    origin = np.asarray(case.image.origin_mm) - np.array([1.05, 1.05, 0.0])
    medseg.write(Volume.from_array(array, spacing_mm=(0.7, 0.7, 1.25), origin_mm=origin), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None, help="model bundle (default: tiny)")
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.0, 1024.0, 768.0],
                        help="memory_budget_mb values; 0 = no budget (the reference)")
    parser.add_argument("--slices", type=int, default=600)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="fp32", help="fp32 (default) or auto/bf16")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(json.loads(args.worker))
        return
    import _nnunet
    import numpy as np

    import medseg

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="predict_memory_"))
    work.mkdir(parents=True, exist_ok=True)
    bundle = args.bundle
    if bundle is None:
        bundle = work / "tiny_bundle"
        if not (bundle / "bundle.yaml").exists():
            from _tiny_bundle import train_tiny_bundle

            start = time.perf_counter()
            train_tiny_bundle(bundle)
            print(f"trained tiny bundle in {time.perf_counter() - start:.0f} s", flush=True)
    image = work / f"ct512x512x{args.slices}.nii.gz"
    if not image.exists():
        _ct_case(image, args.slices)
    print(f"work dir {work}; load average {os.getloadavg()}", flush=True)
    rows = []
    reference = None
    for budget in args.budgets:
        out = work / f"labels_budget{int(budget)}.nii.gz"
        spec = {"bundle": str(bundle), "image": str(image), "out": str(out), "budget_mb": budget,
                "threads": args.threads, "precision": args.precision}
        log_path = work / f"budget{int(budget)}.log"
        load_before = os.getloadavg()[0]
        run = _nnunet.run_sampled([sys.executable, __file__, "--worker", json.dumps(spec)],
                                  log_path=log_path, name=f"budget {budget}")
        record = json.loads(log_path.read_text().strip().splitlines()[-1])
        record.update(budget_mb=budget, process_peak_mib=run.peak_rss_bytes / _MIB,
                      wall_s=run.seconds, load=(load_before, os.getloadavg()[0]))
        labels = medseg.read(out, kind="labels").array
        if reference is None:
            reference = labels
            record["labels_differ"] = None
        else:
            record["labels_differ"] = int(np.count_nonzero(labels != reference))
        del labels
        rows.append(record)
        print(json.dumps(record), flush=True)
    (work / "results.json").write_text(json.dumps(rows, indent=1))
    voxels = reference.size if reference is not None else 0
    print(f"\n512x512x{args.slices} CT, {args.precision}, {args.threads} threads; "
          f"baseline (python+torch+model) {rows[0]['baseline_mib']:.0f} MiB, "
          f"input {rows[0]['input_mib']:.0f} MiB")
    print("| memory_budget_mb | read / predict / write s | process peak RSS MiB | "
          "predict alloc MiB (budgeted) | plan estimate MiB | labels vs no budget |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        budget = "none" if not row["budget_mb"] else f"{row['budget_mb']:.0f}"
        differ = "reference" if row["labels_differ"] is None else (
            "identical" if row["labels_differ"] == 0
            else f"{row['labels_differ']} of {voxels} differ")
        print(f"| {budget} | {row['read_s']:.1f} / {row['predict_s']:.1f} / {row['write_s']:.1f} | "
              f"{row['process_peak_mib']:.0f} | {row['predict_alloc_mib']:.0f} | "
              f"{row['plan_estimate_mib']:.0f} | {differ} |")
    print(f"results: {work / 'results.json'}")


if __name__ == "__main__":
    main()
