"""Train and apply the unsupervised anomaly detector: bundle in, anomaly map, mask and case score out.

``train_anomaly_model`` fits on normal scans and saves a bundle; ``AnomalyScorer`` loads it and scores scans.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from medseg.anomaly.denoising import (
    DenoisingConfig,
    reconstruct,
    spec_postprocessing,
    train_denoiser,
)
from medseg.anomaly.evaluation import threshold_at_fpr
from medseg.anomaly.maps import AnomalyResult, body_mask, finish_map
from medseg.data.preprocess import NormalizationSpec, normalize_intensity, preprocess_image
from medseg.errors import BundleError, DatasetError, InputNotFoundError
from medseg.inference.bundle import BundleSpec, load_bundle, save_bundle
from medseg.volume import Volume

__all__ = ["AnomalyScorer", "LesionsInNormalDataWarning", "train_anomaly_model", "load_normal_scans"]

log = logging.getLogger(__name__)

_ATLAS_NAME = "atlas.nii.gz"
_SCALE_NAME = "residual_scale.nii.gz"
_VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")
_LESION_NAMES = re.compile(r"lesion|tumou?r|metasta|cancer|nodule|bleed|haemorr|hemorr|anomal|cyst",
                           re.IGNORECASE)


class LesionsInNormalDataWarning(UserWarning):
    """The 'normal' training scans carry lesion labels: the model would learn lesions as normal."""


class AnomalyScorer:
    """Scores scans with a trained denoising detector: ``scorer(volume) -> AnomalyResult``.

    Parameters
    ----------
    model : torch.nn.Module
        The denoising network (eval mode).
    spec : BundleSpec
        Its bundle spec; ``spec.postprocessing`` holds threshold, smoothing,
        body mask settings and the normal validation case scores.
    """

    def __init__(self, model: torch.nn.Module, spec: BundleSpec,
                 bundle_dir: Path | None = None, *, atlas: Volume | None = None,
                 residual_scale: Volume | None = None) -> None:
        if spec.postprocessing.get("task") != "anomaly_denoising":
            raise BundleError(f"{bundle_dir or 'bundle'}: not an anomaly-model bundle "
                              "(postprocessing.task is not 'anomaly_denoising'); train one with "
                              "`medseg anomaly train`")
        if spec.in_channels == 2 and atlas is None:
            raise BundleError(f"{bundle_dir or 'bundle'}: atlas model without its {_ATLAS_NAME}; "
                              "copy the whole bundle folder")
        self.model = model.eval()
        self.spec = spec
        self.bundle_dir = bundle_dir
        self.atlas = atlas
        self.residual_scale = residual_scale

    @classmethod
    def from_bundle(cls, path: str | Path, *, device: str = "auto") -> AnomalyScorer:
        """Load a bundle written by :func:`train_anomaly_model` (``medseg anomaly train``).

        ``device`` (``"auto"``: CUDA when there is a GPU) runs the network's windows.
        """
        import medseg

        model, spec = load_bundle(path)
        atlas_path = Path(path) / _ATLAS_NAME
        atlas = medseg.read(atlas_path, kind="image") if atlas_path.exists() else None
        scale_path = Path(path) / _SCALE_NAME
        scale = medseg.read(scale_path, kind="image") if scale_path.exists() else None
        from medseg.inference.sliding_window import resolve_device

        model = model.to(resolve_device(device))
        return cls(model, spec, Path(path), atlas=atlas, residual_scale=scale)

    @property
    def threshold(self) -> float:
        """Anomaly-map threshold chosen on normal validation scans at the target FPR."""
        return float(self.spec.postprocessing.get("threshold", float("inf")))

    def __call__(self, image: Volume, *, case_id: str | None = None) -> AnomalyResult:
        return self.score(image, case_id=case_id)

    def score(self, image: Volume, *, case_id: str | None = None,
              threshold: float | None = None) -> AnomalyResult:
        """Anomaly map, mask and case score of ``image``, returned on ``image``'s own grid.

        A scan on another grid than the training scans is resampled to the
        model's spacing (and RAS orientation; an atlas model: onto the atlas
        grid), scored, and resampled back. The case score is the maximum of
        the smoothed map (network grid).
        """
        post = self.spec.postprocessing
        if self.atlas is not None:
            grid = image if image.same_grid(self.atlas) else image.resample_like(self.atlas, order=1)
        else:
            grid = preprocess_image(image, target_spacing_mm=self.spec.target_spacing_mm,
                                    normalization=NormalizationSpec("none"),
                                    orientation=self.spec.orientation)
        body = body_mask(grid, threshold=post["body_threshold"], erode_mm=post["erode_mm"])
        normalised = normalize_intensity(grid.array, self.spec.normalization)
        recon = reconstruct(self.model, normalised, spatial_dims=self.spec.spatial_dims,
                            patch_size=self.spec.patch_size,
                            residual=bool(post.get("residual_output", False)),
                            atlas=None if self.atlas is None else self.atlas.array)
        residual = np.abs(normalised - recon)
        if self.residual_scale is not None:
            residual = residual / self.residual_scale.array
        residual = grid.with_array(residual.astype(np.float32))
        anomaly_map = finish_map(residual, body, smoothing_mm=post["smoothing_mm"])
        case_score = float(anomaly_map.array.max())
        if not grid.same_grid(image):
            anomaly_map = anomaly_map.resample_like(image, order=1)
            body = body.resample_like(image, order=0)
        threshold = self.threshold if threshold is None else float(threshold)
        mask = anomaly_map.with_array((anomaly_map.array > threshold).astype(np.uint8),
                                      kind="labels", labels={1: "anomaly"})
        meta = dict(image.meta, anomaly_model=str(self.bundle_dir or ""))
        return AnomalyResult(anomaly_map.replace(meta=meta), mask.replace(meta=meta),
                             body.replace(meta=meta), case_score, threshold,
                             case_id or image.source)

    def case_percentile(self, case_score: float) -> float:
        """Share (0-100) of normal validation scans whose case score is below ``case_score``."""
        normals = np.asarray(self.spec.postprocessing.get("normal_case_scores", []), dtype=float)
        return float(100.0 * (normals < case_score).mean()) if normals.size else float("nan")


def _volume_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.name.lower().endswith(_VOLUME_SUFFIXES)
                  and not p.name.startswith("."))


def _warn_lesions(case_id: str, labels: Volume, names: dict[int, str]) -> None:
    values = [int(v) for v in np.unique(labels.array) if v != 0]
    lesion_values = [v for v in values if _LESION_NAMES.search(names.get(v, ""))]
    if not names:
        lesion_values = values  # a plain lesion mask
    if lesion_values:
        count = int(np.isin(labels.array, lesion_values).sum())
        message = (f"{case_id}: the normal training set has {count} lesion voxels (labels "
                   f"{lesion_values}); an anomaly model must see healthy scans only, so remove "
                   "this case or its lesions")
        log.warning(message)
        warnings.warn(message, LesionsInNormalDataWarning, stacklevel=3)


def load_normal_scans(source: str | Path | Sequence[Volume | str | Path]) -> list[Volume]:
    """Read normal training scans from a folder (MSD/plain), a list of paths, or Volumes.

    In an MSD-layout folder (``imagesTr/``, ``labelsTr/``, ``dataset.json``)
    label maps that hold a lesion-like label (lesion, tumour, metastasis,
    nodule, bleed, cyst, anomaly) with voxels raise a
    :class:`LesionsInNormalDataWarning`.
    """
    import json

    import medseg

    if isinstance(source, (str, Path)):
        folder = Path(source)
        if not folder.exists():
            raise InputNotFoundError(f"{folder}: normal dataset not found; check the path")
        if folder.is_file():
            return [medseg.read(folder)]
        images_dir = folder / "imagesTr" if (folder / "imagesTr").is_dir() else folder
        paths = _volume_files(images_dir)
        if not paths:
            raise DatasetError(f"{folder}: no NIfTI/NRRD/MHA scans found; pass a folder of "
                               "normal scans or an MSD dataset with imagesTr/")
        names: dict[int, str] = {}
        if (folder / "dataset.json").exists():
            raw = json.loads((folder / "dataset.json").read_text()).get("labels", {})
            names = {int(k): str(v) for k, v in raw.items() if str(k).lstrip("-").isdigit()}
        volumes = []
        for path in paths:
            volumes.append(medseg.read(path, kind="image"))
            label_path = folder / "labelsTr" / path.name.replace("_0000.", ".")
            if images_dir != folder and label_path.exists():
                _warn_lesions(path.name, medseg.read(label_path, kind="labels"), names)
        return volumes
    return [v if isinstance(v, Volume) else medseg.read(v, kind="image") for v in source]


def train_anomaly_model(
    normal: str | Path | Sequence[Volume | str | Path],
    *,
    out_dir: str | Path,
    config: DenoisingConfig | str | Path | None = None,
    val: Sequence[Volume] | None = None,
    lesion_masks: Sequence[Volume] | None = None,
    progress: bool = True,
) -> AnomalyScorer:
    """Train the denoising anomaly detector on normal scans and save it as a bundle.

    Parameters
    ----------
    normal
        Healthy scans: a folder (MSD layout or plain), paths, or Volumes.
    out_dir
        Bundle folder to write (``bundle.yaml`` + ``weights.pt``).
    config
        A :class:`DenoisingConfig`, a YAML path, or ``None`` for defaults.
    val
        Normal validation scans for the threshold; by default the last
        ``config.val_fraction`` of ``normal`` is held out.
    lesion_masks
        Optional label maps of the training scans; any lesion voxel warns.

    Returns
    -------
    AnomalyScorer
        Ready to score, with ``bundle_dir`` set.
    """
    from medseg.anomaly.denoising import config_path_or_default

    if not isinstance(config, DenoisingConfig):
        config = config_path_or_default(config)
    scans = load_normal_scans(normal)
    for index, labels in enumerate(lesion_masks or []):
        _warn_lesions(scans[index].source if index < len(scans) else f"case {index}", labels, {})
    if val is None:
        n_val = int(round(config.val_fraction * len(scans))) if len(scans) > 2 else 0
        n_val = max(n_val, 1) if len(scans) > 2 else 0
        scans, val = scans[: len(scans) - n_val], scans[len(scans) - n_val:]
    if not val:
        log.warning("no normal validation scans; the threshold is set on the training scans "
                    "and will be optimistic")
        val = scans
    model, facts = train_denoiser(scans, config=config, progress=progress)
    spec = BundleSpec(
        model_name=config.model_name, model_options=facts["model_options"],
        labels={0: "normal", 1: "anomaly"}, spatial_dims=config.spatial_dims,
        in_channels=2 if config.atlas else 1,
        channel_names=("image", "atlas") if config.atlas else ("image",),
        patch_size=tuple(config.patch_size), target_spacing_mm=facts["target_spacing_mm"],
        normalization=facts["normalization"],
        postprocessing=spec_postprocessing(config, threshold=float("inf"), normal_case_scores=[]),
        provenance={"trainer": "medseg.anomaly.train_anomaly_model", "config": facts["config"],
                    "config_hash": facts["config_hash"], "n_train": len(scans), "n_val": len(val),
                    "train_seconds": round(facts["seconds"], 2), "history": facts["history"],
                    "sources": [v.source for v in scans]})
    scorer = AnomalyScorer(model, spec, atlas=facts["atlas"])
    scale = _residual_scale(scorer, scans) if config.atlas and config.calibrate else None
    scorer.residual_scale = scale
    results = [scorer.score(v) for v in val]
    normal_voxels = np.concatenate([r.anomaly_map.array[r.body.array > 0] for r in results])
    threshold = threshold_at_fpr(normal_voxels, config.target_fpr)
    post = spec_postprocessing(config, threshold=threshold,
                               normal_case_scores=[r.case_score for r in results])
    spec = dataclasses.replace(spec, postprocessing=post)
    out_dir = Path(out_dir)
    save_bundle(out_dir, model=model, spec=spec)
    if facts["atlas"] is not None:
        import medseg

        medseg.write(facts["atlas"], out_dir / _ATLAS_NAME)
    if scale is not None:
        medseg.write(scale, out_dir / _SCALE_NAME)
    log.info("anomaly bundle written to %s (threshold %.4f at FPR %.3g)", out_dir, threshold,
             config.target_fpr)
    return AnomalyScorer(model, spec, out_dir, atlas=facts["atlas"], residual_scale=scale)


def _residual_scale(scorer: AnomalyScorer, scans: Sequence[Volume]) -> Volume:
    """Per-voxel RMS of the reconstruction residual over normal scans (floored at its 5th percentile)."""
    squares = []
    for scan in scans:
        grid = scan if scan.same_grid(scorer.atlas) else scan.resample_like(scorer.atlas, order=1)
        normalised = normalize_intensity(grid.array, scorer.spec.normalization)
        recon = reconstruct(scorer.model, normalised, spatial_dims=scorer.spec.spatial_dims,
                            patch_size=scorer.spec.patch_size, atlas=scorer.atlas.array,
                            residual=bool(scorer.spec.postprocessing.get("residual_output")))
        squares.append((normalised - recon) ** 2)
    rms = np.sqrt(np.mean(squares, axis=0))
    floor = max(float(np.percentile(rms, 5)), 1e-3)
    return scorer.atlas.with_array(np.maximum(rms, floor).astype(np.float32))
