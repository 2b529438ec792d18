"""Train a tiny 3D U-Net on phantoms and save it as a bundle (test fixture helper).

Used until/unless the shared ``tiny_run_3d`` training fixture is fast enough to replace it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medseg.data.preprocess import NormalizationSpec, preprocess_image
from medseg.demo import make_phantom
from medseg.inference.bundle import BundleSpec, save_bundle
from medseg.models import create_model

SHAPE = (32, 32, 32)
SPACING_MM = (3.0, 3.0, 4.0)
PATCH = (24, 24, 24)
LABELS = {0: "background", 1: "liver", 2: "spleen", 3: "kidney"}
NORMALIZATION = NormalizationSpec("ct", -200.0, 300.0, 50.0, 100.0)


def tiny_spec() -> BundleSpec:
    options = dict(spatial_dims=3, in_channels=1, out_channels=4, patch_size=list(PATCH),
                   base_filters=8, max_filters=32)
    return BundleSpec(model_name="unet_small", model_options=options, labels=dict(LABELS),
                      patch_size=PATCH, target_spacing_mm=SPACING_MM, normalization=NORMALIZATION,
                      provenance={"trained_by": "tests/inference/_tiny_bundle.py"})


def train_tiny_bundle(folder: Path, *, iterations: int = 120, seed: int = 0) -> Path:
    """Fit a small DynUNet to 6 phantoms (random 24^3 crops) and save the bundle in ``folder``."""
    from monai.losses import DiceCELoss

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    spec = tiny_spec()
    cases = [make_phantom(shape=SHAPE, spacing_mm=SPACING_MM, seed=100 + i) for i in range(6)]
    images = [preprocess_image(c.image, target_spacing_mm=SPACING_MM, normalization=NORMALIZATION).array
              for c in cases]
    labels = [c.labels.array.astype(np.int64) for c in cases]
    model = create_model(spec.model_name, **spec.model_options)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    model.train()
    for _ in range(iterations):
        xs, ys = [], []
        for _ in range(2):
            index = int(rng.integers(len(cases)))
            corner = [int(rng.integers(0, s - p + 1)) for s, p in zip(SHAPE, PATCH)]
            window = tuple(slice(c, c + p) for c, p in zip(corner, PATCH))
            xs.append(images[index][window][None])
            ys.append(labels[index][window][None])
        x = torch.from_numpy(np.stack(xs))
        y = torch.from_numpy(np.stack(ys))
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    model.eval()
    return save_bundle(folder, model=model, spec=spec)


_TRAINED: dict[str, Path] = {}


def cached_tiny_bundle(tmp_path_factory, config=None) -> Path:
    """Train once per test session, whichever test folder asks first.

    With pytest's cache plugin on (``config.cache``), the bundle is also kept
    across sessions, keyed by this file's source, so local reruns skip the
    training; CI runs with ``-p no:cacheprovider`` and always trains afresh.
    """
    if "tiny" in _TRAINED:
        return _TRAINED["tiny"]
    cache = getattr(config, "cache", None) if config is not None else None
    if cache is not None:
        import hashlib

        # The bundle depends on this file, the phantoms it trains on and the trainer's code.
        import medseg

        package = Path(medseg.__file__).parent
        sources = [Path(__file__), *sorted((package / "demo").glob("*.py")),
                   *sorted((package / "training").glob("*.py"))]
        digest = hashlib.sha256()
        for source in sources:
            digest.update(source.read_bytes())
        key = digest.hexdigest()[:12]
        folder = Path(cache.mkdir(f"medseg-tiny-bundle-{key}"))
        if not (folder / "bundle.yaml").exists():  # written last by save_bundle
            train_tiny_bundle(folder)
        _TRAINED["tiny"] = folder
    else:
        _TRAINED["tiny"] = train_tiny_bundle(tmp_path_factory.mktemp("bundles") / "tiny")
    return _TRAINED["tiny"]
