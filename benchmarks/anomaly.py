"""Anomaly benchmark: z-score baseline vs denoising anomaly model vs supervised lesion model.

Prints AUROC, AUPRC, best Dice, lesion F1 at <= 1 FP/case and case AUROC on the synthetic
benchmark (``medseg.anomaly.synthetic``), with train and score time on this CPU.

    python benchmarks/anomaly.py            # full size (64^3 phantoms), ~15-30 min on 2 cores
    python benchmarks/anomaly.py --quick    # 48x48x40 phantoms, fewer cases
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medseg.anomaly import (
    DenoisingConfig,
    ZScoreBaseline,
    auroc,
    make_anomaly_benchmark,
    train_anomaly_model,
    train_lesion_detector,
    voxel_scores,
    write_lesion_dataset,
)
from medseg.anomaly.evaluation import lesion_f1_at_fp_rate


def _evaluate(name: str, maps, bodies, bench, train_s: float, score_s: float) -> dict:
    truths = [c.lesion_mask for c in bench.test]
    voxel = voxel_scores(maps, truths, bodies)
    point = lesion_f1_at_fp_rate(maps, truths, fp_per_case=1.0, min_size_mm3=20.0)
    has_lesion = np.array([len(c.table) > 0 for c in bench.test])
    case_scores = np.array([float(m.array.max()) for m in maps])
    return {"method": name, "auroc": voxel["auroc"], "auprc": voxel["auprc"],
            "best_dice": voxel["best_dice"], "lesion_f1_at_1fp": point["f1"],
            "lesion_sens_at_1fp": point["sensitivity"], "case_auroc": auroc(case_scores, has_lesion),
            "train_s": train_s, "score_s_per_case": score_s / len(bench.test)}


def _per_kind(name: str, maps, bodies, bench) -> dict:
    """AUPRC per lesion kind: the other kinds' lesions are left out of the voxel pool."""
    from medseg.anomaly import auprc

    row = {"method": name}
    for kind in ("hypo", "hyper", "texture", "ring"):
        scores, labels = [], []
        for score, body, case in zip(maps, bodies, bench.test):
            ids = case.table.loc[case.table["kind"] == kind, "lesion_id"].to_numpy()
            target = np.isin(case.lesions.array, ids)
            keep = (body.array > 0) & ~((case.lesions.array > 0) & ~target)
            scores.append(score.array[keep])
            labels.append(target[keep])
        row[f"auprc_{kind}"] = auprc(np.concatenate(scores), np.concatenate(labels))
    return row


def _score_unsupervised(name: str, score, bench, train_s: float, rows: list, kinds: list) -> list:
    """Score every test case with ``score``, time it, append the table rows; returns the bodies."""
    started = time.perf_counter()
    results = [score(c.image) for c in bench.test]
    score_s = time.perf_counter() - started
    maps, bodies = [r.anomaly_map for r in results], [r.body for r in results]
    rows.append(_evaluate(name, maps, bodies, bench, train_s, score_s))
    kinds.append(_per_kind(name, maps, bodies, bench))
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest on a loaded shared machine)")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--no-supervised", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = dict(shape=(48, 48, 40), spacing_mm=(2.0, 2.0, 3.2)) if args.quick else \
        dict(shape=(64, 64, 64), spacing_mm=(1.5, 1.5, 2.0))
    counts = dict(n_train=8, n_val=2, n_test_lesion=4, n_test_normal=2) if args.quick else \
        dict(n_train=16, n_val=4, n_test_lesion=8, n_test_normal=4)
    bench = make_anomaly_benchmark(**counts, **size, seed=0)
    rows, kinds = [], []

    started = time.perf_counter()
    baseline = ZScoreBaseline().fit(bench.train, val=bench.val)
    train_s = time.perf_counter() - started
    bodies = _score_unsupervised("z-score baseline", baseline.score, bench, train_s, rows, kinds)

    config = DenoisingConfig(patch_size=(32, 32))  # defaults: blobs, intensity jitter, calibration
    if args.iterations:
        config = dataclasses.replace(config, iterations=args.iterations)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        scorer = train_anomaly_model(bench.train, val=bench.val, out_dir=Path(tmp) / "anomaly",
                                     config=config, progress=False)
        train_s = time.perf_counter() - started
        _score_unsupervised("denoising model", scorer.score, bench, train_s, rows, kinds)

        if not args.no_supervised:
            # Labeled lesion cases with the same lesion kinds, sizes and variation; disjoint seeds.
            root = write_lesion_dataset(Path(tmp) / "lesions", n_cases=12, **size,
                                        kinds=("hypo", "hyper", "texture", "ring"),
                                        radius_mm=(3.0, 9.0), contrast_hu=(20.0, 60.0), seed=5000)
            started = time.perf_counter()
            detector, _ = train_lesion_detector(root, out_dir=Path(tmp) / "run", config="tiny3d",
                                                progress=False, min_size_mm3=20.0)
            train_s = time.perf_counter() - started
            started = time.perf_counter()
            probs = [detector.probability(c.image) for c in bench.test]
            score_s = time.perf_counter() - started
            rows.append(_evaluate("supervised (tiny3d)", [p.replace(kind="image") for p in probs],
                                  bodies, bench, train_s, score_s))
            kinds.append(_per_kind("supervised (tiny3d)", probs, bodies, bench))

    pd.set_option("display.width", 160)
    where = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"synthetic benchmark: {counts}, {size}, torch threads {args.threads}, networks on {where}")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(pd.DataFrame(kinds).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    base, model = rows[0], rows[1]
    print(f"denoising / baseline: AUPRC x{model['auprc'] / max(base['auprc'], 1e-9):.2f}, "
          f"train time x{model['train_s'] / max(base['train_s'], 1e-9):.0f}, "
          f"score time x{model['score_s_per_case'] / max(base['score_s_per_case'], 1e-9):.1f}")


if __name__ == "__main__":
    main()
