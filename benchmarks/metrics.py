"""Dice + HD95 + ASSD + NSD@1mm on a 512x512x300 CT-sized pair: medseg vs MONAI vs surface-distance.

Each library runs in a fresh subprocess (one thread) on the same masks; the script prints the
values side by side, wall and CPU seconds, extra peak memory and the speed ratios.

    python benchmarks/metrics.py                # liver-sized object and a 5-organ label map
    python benchmarks/metrics.py --repeats 3 --skip-monai
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

SHAPE = (512, 512, 300)
SPACING_MM = (0.7, 0.7, 2.5)
# Ellipsoid organs: centre and semi-axes in mm (RAS-like, volume centred at 0).
ORGANS = {
    "liver": ((-70.0, 20.0, 0.0), (80.0, 65.0, 70.0)),
    "spleen": ((90.0, 40.0, 20.0), (35.0, 45.0, 55.0)),
    "kidney_left": ((70.0, -40.0, -60.0), (28.0, 25.0, 55.0)),
    "kidney_right": ((-70.0, -40.0, -70.0), (28.0, 25.0, 55.0)),
    "stomach": ((30.0, 60.0, 40.0), (40.0, 30.0, 45.0)),
}
CASES = {"liver": ("liver",), "5 organs": tuple(ORGANS)}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _smooth_noise(rng: np.random.Generator, shape, spacing, scale_mm: float = 12.0) -> np.ndarray:
    coarse = tuple(max(2, int(np.ceil(n * s / scale_mm))) for n, s in zip(shape, spacing))
    field = ndimage.gaussian_filter(rng.normal(size=coarse), 1.0)
    field /= field.std()
    zoomed = ndimage.zoom(field, [n / c for n, c in zip(shape, coarse)], order=1, grid_mode=True,
                          mode="nearest")
    return zoomed[: shape[0], : shape[1], : shape[2]]


def make_pair(names, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Reference organs with bumpy surfaces; prediction = perturbed surface + ~1.5 mm shift."""
    rng = np.random.default_rng(seed)
    spacing = np.asarray(SPACING_MM)
    origin = -np.asarray(SHAPE) * spacing / 2
    ref = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    for value, name in enumerate(names, start=1):
        centre, radii = (np.asarray(v) for v in ORGANS[name])
        low = np.floor((centre - 1.3 * radii - origin) / spacing).astype(int).clip(0)
        high = np.ceil((centre + 1.3 * radii - origin) / spacing).astype(int).clip(None, np.asarray(SHAPE))
        sub = tuple(int(h - lo) for lo, h in zip(low, high))
        axes = [(np.arange(lo, h) * s + o - c) / r
                for lo, h, s, o, c, r in zip(low, high, spacing, origin, centre, radii)]
        rho = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
        bumps, jitter = _smooth_noise(rng, sub, spacing), _smooth_noise(rng, sub, spacing)
        shift = rng.normal(size=3) * 1.5 / spacing
        box = tuple(slice(lo, h) for lo, h in zip(low, high))
        ref[box][rho <= 1.0 + 0.12 * bumps] = value
        moved = ndimage.shift(1.0 + 0.12 * bumps + 0.05 * jitter - rho, shift, order=1, mode="nearest")
        pred[box][moved >= 0] = value
    return pred, ref


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _run_medseg(pred, ref, labels, surface):
    from medseg.metrics import evaluate

    table = evaluate(pred, ref, spacing_mm=SPACING_MM, labels=labels, surface=surface,
                     metrics=["dice", "hd95_mm", "assd_mm", "nsd_1mm"])
    return table[["dice", "hd95_mm", "assd_mm", "nsd_1mm"]].to_numpy().tolist()


def _run_surface_distance(pred, ref, labels):
    import surface_distance as sd

    rows = []
    for label in labels:
        p, r = pred == label, ref == label
        dice = sd.compute_dice_coefficient(r, p)
        d = sd.compute_surface_distances(r, p, SPACING_MM)
        areas = np.concatenate([d["surfel_areas_gt"], d["surfel_areas_pred"]])
        dists = np.concatenate([d["distances_gt_to_pred"], d["distances_pred_to_gt"]])
        rows.append([float(dice), float(sd.compute_robust_hausdorff(d, 95)),
                     float(np.sum(areas * dists) / np.sum(areas)),
                     float(sd.compute_surface_dice_at_tolerance(d, 1.0))])
    return rows


def _run_monai(pred, ref, labels):
    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_dice,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    torch.set_num_threads(1)
    rows = []
    for label in labels:  # one label at a time keeps the one-hot tensors at 2 x 300 MiB
        p = torch.from_numpy(pred == label)[None, None]
        r = torch.from_numpy(ref == label)[None, None]
        common = {"include_background": True, "spacing": list(SPACING_MM)}
        rows.append([
            float(compute_dice(p, r, include_background=True)),
            float(compute_hausdorff_distance(p, r, percentile=95, **common)),
            float(compute_average_surface_distance(p, r, symmetric=True, **common)),
            float(compute_surface_dice(p, r, [1.0], **common)),
        ])
    return rows


def worker(library: str, folder: str, repeats: int) -> None:
    """Child process: load the pair, time ``repeats`` runs, print one JSON line."""
    warnings.simplefilter("ignore")
    pred, ref = np.load(Path(folder) / "pred.npy"), np.load(Path(folder) / "ref.npy")
    labels = [int(v) for v in json.loads((Path(folder) / "labels.json").read_text())]
    run = {
        "medseg": lambda: _run_medseg(pred, ref, labels, "surfel"),
        "medseg-voxel": lambda: _run_medseg(pred, ref, labels, "voxel"),
        "surface-distance": lambda: _run_surface_distance(pred, ref, labels),
        "monai": lambda: _run_monai(pred, ref, labels),
    }[library]
    # Imports are not part of the timing or the memory figure.
    if library == "monai":
        import monai.metrics  # noqa: F401
    elif library == "surface-distance":
        import surface_distance  # noqa: F401
    else:
        import medseg.metrics  # noqa: F401
    baseline = _rss_mib()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        values = run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": min(walls), "cpu_s": min(cpus), "extra_mib": max(0.0, peak - baseline),
                      "values": values}))


def _spawn(library: str, folder: str, repeats: int) -> dict:
    env = dict(os.environ, **dict.fromkeys(THREAD_VARS, "1"))
    done = subprocess.run([sys.executable, __file__, "--worker", library, folder, str(repeats)],
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{library} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per library (minimum is kept)")
    parser.add_argument("--monai-repeats", type=int, default=1)
    parser.add_argument("--skip-monai", action="store_true")
    parser.add_argument("--case", choices=list(CASES), action="append", help="default: all cases")
    args = parser.parse_args()
    print(f"pair {SHAPE} at {SPACING_MM} mm; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores; times = min over repeats, one thread each")
    for case in args.case or list(CASES):
        names = CASES[case]
        with tempfile.TemporaryDirectory() as folder:
            pred, ref = make_pair(names)
            np.save(Path(folder) / "pred.npy", pred)
            np.save(Path(folder) / "ref.npy", ref)
            (Path(folder) / "labels.json").write_text(json.dumps(list(range(1, len(names) + 1))))
            del pred, ref
            libraries = ["medseg", "surface-distance", "medseg-voxel"] + ([] if args.skip_monai else ["monai"])
            results = {lib: _spawn(lib, folder, args.monai_repeats if lib == "monai" else args.repeats)
                       for lib in libraries}
        print(f"\n== {case} ({', '.join(names)})")
        print(f"{'library':18s} {'wall s':>8s} {'cpu s':>8s} {'+MiB':>7s}   dice / hd95_mm / assd_mm / nsd_1mm "
              "(first label)")
        for lib, result in results.items():
            values = " / ".join(f"{v:.4f}" for v in result["values"][0])
            print(f"{lib:18s} {result['wall_s']:8.2f} {result['cpu_s']:8.2f} {result['extra_mib']:7.0f}   {values}")
        for ours, peer in (("medseg", "surface-distance"), ("medseg-voxel", "monai")):
            if peer not in results:
                continue
            a, b = results[ours], results[peer]
            gap = np.max(np.abs(np.asarray(a["values"]) - np.asarray(b["values"]))
                         / np.maximum(np.abs(np.asarray(b["values"])), 1e-12))
            print(f"{ours} vs {peer}: {b['wall_s'] / a['wall_s']:.1f}x faster (wall), "
                  f"{b['cpu_s'] / a['cpu_s']:.1f}x (cpu), memory {a['extra_mib']:.0f} vs "
                  f"{b['extra_mib']:.0f} MiB, max relative value difference {gap:.1e}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
