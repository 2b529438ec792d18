"""Time medseg's DICOM series reader against SimpleITK's ImageSeriesReader on one CT series.

Writes a 512x512x300 16-bit CT series once, then reads it in fresh subprocesses (median of 3 each).

Usage: python benchmarks/dicom_load.py [--slices 300] [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Each reader runs in its own interpreter so that peak RSS is its own. The peak is reported
# as the growth of VmHWM over the resident size just before the read (imports excluded);
# VmHWM, unlike ru_maxrss, is not inherited from the parent across fork/exec.
_CHILD = r"""
import json, sys, time
from pathlib import Path

def status_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024

folder, which = sys.argv[1], sys.argv[2]
if which == "medseg":
    from medseg.io import read_dicom_series
    import pydicom  # noqa: F401  (import cost is not part of the read)
else:
    import SimpleITK as sitk
before = status_mib("VmRSS")
start = time.perf_counter()
if which == "medseg":
    volume = read_dicom_series(folder)
    array = volume.array
else:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder))
    image = reader.Execute()
    array = sitk.GetArrayViewFromImage(image)
seconds = time.perf_counter() - start
peak = status_mib("VmHWM")
print(json.dumps({"seconds": seconds, "peak_mib": peak - before, "shape": list(array.shape),
                  "dtype": str(array.dtype), "checksum": float(array.astype("float64").sum())}))
"""


def write_series(folder: Path, n_slices: int) -> None:
    from medseg import Volume
    from medseg.io.dicom_write import write_dicom_series

    i, j = np.meshgrid(np.arange(512), np.arange(512), indexing="ij")
    body = ((i - 256) ** 2 + (j - 256) ** 2 < 220**2).astype(np.int16)
    array = np.empty((512, 512, n_slices), dtype=np.int16)
    rng = np.random.default_rng(0)
    for k in range(n_slices):
        noise = rng.integers(-20, 21, size=(512, 512), dtype=np.int16)
        array[:, :, k] = np.where(body, 40 + noise + (k % 50), -1000)
    volume = Volume.from_array(array, spacing_mm=(0.7, 0.7, 2.5), origin_mm=(-180.0, -180.0, -400.0))
    write_dicom_series(volume, folder, series_description="benchmark", uid_seed="benchmark")


def run(folder: Path, which: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(folder), which], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="write/reuse the series here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch) / "ct"
        if not (folder.exists() and any(folder.glob("*.dcm"))):
            start = time.perf_counter()
            write_series(folder, args.slices)
            print(f"wrote {args.slices} slices in {time.perf_counter() - start:.1f} s")
        float32_mib = 512 * 512 * args.slices * 4 / 2**20
        results: dict[str, list[dict]] = {"medseg": [], "simpleitk": []}
        for _ in range(args.repeats):  # interleaved so that machine noise hits both alike
            for which in results:
                results[which].append(run(folder, which))
        if results["medseg"][0]["checksum"] != results["simpleitk"][0]["checksum"]:
            raise SystemExit("medseg and SimpleITK read different voxel values")
        summary = {}
        for which, runs in results.items():
            summary[which] = {
                "median_s": statistics.median(r["seconds"] for r in runs),
                "peak_mib": max(r["peak_mib"] for r in runs),
                "dtype": runs[0]["dtype"],
            }
            times = ", ".join(f"{r['seconds']:.2f}" for r in runs)
            print(f"{which:10s} median {summary[which]['median_s']:.2f} s over {len(runs)} runs "
                  f"({times}), peak +{summary[which]['peak_mib']:.0f} MiB, dtype {summary[which]['dtype']}")
        ratio = summary["medseg"]["median_s"] / summary["simpleitk"]["median_s"]
        print(f"time ratio medseg/SimpleITK: {ratio:.2f} (goal <= 1.0)")
        print(f"peak memory medseg: {summary['medseg']['peak_mib'] / float32_mib:.2f}x the float32 volume "
              f"({float32_mib:.0f} MiB; goal <= 1.5x); SimpleITK: "
              f"{summary['simpleitk']['peak_mib'] / float32_mib:.2f}x")


if __name__ == "__main__":
    main()
