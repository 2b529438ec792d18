"""Shared pytest fixtures: a small synthetic dataset and one session-wide tiny training run.

Fixtures are generic so that every team's tests can reuse them.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_dataset_3d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MSD-layout phantom dataset: 12 cases of 48^3 voxels (1.5 x 1.5 x 2.0 mm), labels 1-3."""
    from medseg.demo import make_dataset

    return make_dataset(tmp_path_factory.mktemp("tiny_dataset_3d"), n_cases=12, shape=(48, 48, 48),
                        seed=0)


@pytest.fixture(scope="session")
def tiny_run_3d(tiny_dataset_3d: Path, tmp_path_factory: pytest.TempPathFactory):
    """A :class:`medseg.training.TrainResult` of ``configs/tiny3d.yaml`` on ``tiny_dataset_3d``.

    ``tiny_run_3d.bundle_dir`` is a model bundle for ``medseg.inference``; the run folder
    holds plan.yaml, config.yaml, splits.json, checkpoints/, metrics.csv and curves.png.
    """
    from medseg.training import train

    return train(tiny_dataset_3d, out_dir=tmp_path_factory.mktemp("tiny_run_3d") / "run",
                 config="tiny3d", seed=0, progress=False)
