"""``Predictor``: load bundles once, then segment many volumes on their own voxel grids.

Preprocess like training, sliding-window probabilities, resample back once from probabilities, argmax.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.data.preprocess import network_grid, preprocess_image
from medseg.errors import BundleError, InferenceError, InvalidArgumentError
from medseg.inference.bundle import BundleSpec, load_bundle
from medseg.inference.postprocess import apply_postprocessing
from medseg.inference.sliding_window import (
    WindowSettings,
    resolve_device,
    resolve_precision,
    sliding_window_probabilities,
)
from medseg.resample import iter_resampled_slabs, slab_depth_for, slab_working_bytes
from medseg.volume import Volume

__all__ = ["Predictor", "MemoryPlan"]

log = logging.getLogger(__name__)

_MIB = 2**20
# Rough bytes of live activations per window voxel and first-stage filter (inference mode).
_ACTIVATION_BYTES_PER_VOXEL_FILTER = 24
# Smallest working set granted to slabbed preprocessing when the budget is already spent.
_MIN_PREPROCESS_MB = 1.0


@dataclass(frozen=True)
class MemoryPlan:
    """How a prediction fits a memory budget: slab depths and the probability storage type.

    ``preprocess_working_mb`` is what slabbed preprocessing may allocate besides its
    float32 network-grid result (``None``: whole-volume preprocessing).
    ``estimated_peak_mb`` covers what :meth:`Predictor.predict` allocates (see
    ``memory_budget_mb``), not the input volume.
    """

    network_slab_depth: int | None
    output_slab_depth: int | None
    store_dtype: str
    estimated_peak_mb: float
    preprocess_working_mb: float | None = None


def _compatible(first: BundleSpec, other: BundleSpec, where: str) -> None:
    keys = ("labels", "spatial_dims", "in_channels", "patch_size", "target_spacing_mm",
            "orientation", "normalization")
    for key in keys:
        if getattr(first, key) != getattr(other, key):
            raise BundleError(
                f"{where}: cannot ensemble bundles whose {key} differ ({getattr(first, key)!r} vs "
                f"{getattr(other, key)!r}); ensemble only folds of one plan"
            )


class Predictor:
    """Segment volumes with one bundle or an ensemble of bundles (probabilities averaged).

    Build it with :meth:`from_bundle`; the networks load once and serve every call.

    Parameters
    ----------
    models : sequence of torch.nn.Module
        Networks in eval mode sharing ``spec``'s preprocessing and labels.
    spec : BundleSpec
        Preprocessing, patch size and labels.
    device : str
        ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda[:n]"``.
    tta : bool
        Average over all mirrorings of the spatial axes (8 passes in 3D).
    overlap : float
        Window overlap in [0, 1); 0.5 matches nnU-Net's step 0.5.
    memory_budget_mb : float, optional
        Bound for everything one :meth:`predict` call allocates: preprocessing
        (resampling working set and the float32 network-grid image), window
        activations, accumulators, the probability store, resampling back and the
        output label map. Not covered: the input volume as passed in, the loaded
        networks and the buffers torch keeps after its first forward pass (~50 MiB
        on CPU), the full-size probabilities of ``return_probabilities=True`` and
        postprocessing (connected components, ~4-5 bytes per input voxel).
        Larger volumes are preprocessed, predicted and resampled back in z-slabs
        and probabilities stored in float16 when needed; window results do not
        depend on the slab size, and slabbed cubic resampling of the input
        matches the whole-volume one to ~1e-7 of the local intensity steps.
    precision : {"auto", "fp32", "bf16", "fp16"}
        ``auto``: fp16 AMP on CUDA, bf16 autocast on CPUs with native bf16, else fp32.
    sw_batch_size : int
        Windows per network call.
    postprocess : bool
        Apply the bundle's ``postprocessing`` rules (see :mod:`medseg.inference.postprocess`).
    progress : bool
        Show a tqdm bar over windows (or slabs).
    sources : list of str
        Where the bundles came from (recorded in the output's provenance).
    """

    def __init__(
        self,
        models: Sequence[torch.nn.Module],
        spec: BundleSpec,
        *,
        device: str | torch.device = "auto",
        tta: bool = False,
        overlap: float = 0.5,
        memory_budget_mb: float | None = None,
        precision: str = "auto",
        sw_batch_size: int = 1,
        postprocess: bool = True,
        progress: bool = False,
        sources: Sequence[str] = (),
    ) -> None:
        if not models:
            raise InvalidArgumentError("Predictor needs at least one model")
        if not 0.0 <= overlap < 1.0:
            raise InvalidArgumentError(f"overlap must be in [0, 1), got {overlap}")
        if memory_budget_mb is not None and memory_budget_mb <= 0:
            raise InvalidArgumentError(f"memory_budget_mb must be positive, got {memory_budget_mb}")
        self.spec = spec
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.models = [m.to(self.device).eval() for m in models]
        if self.device.type == "cuda":
            self.models = [m.to(memory_format=torch.channels_last_3d) if spec.spatial_dims == 3 else m
                           for m in self.models]
        self.tta = bool(tta)
        self.overlap = float(overlap)
        self.memory_budget_mb = memory_budget_mb
        self.sw_batch_size = int(sw_batch_size)
        self.postprocess = postprocess
        self.progress = progress
        self.sources = [str(s) for s in sources]
        self.weights_sha256: list[str] = [str(spec.provenance.get("weights_sha256", ""))]
        values = sorted(int(k) for k in spec.labels)
        self.label_values = values if 0 in values else [0] + values
        self.n_classes = len(self.label_values)
        out_channels = spec.model_options.get("out_channels")
        if out_channels is not None and int(out_channels) != self.n_classes:
            raise BundleError(
                f"{self.sources or 'bundle'}: network has {out_channels} outputs but the spec names "
                f"{self.n_classes} classes ({values}); the bundle is inconsistent, re-export it"
            )

    # ------------------------------------------------------------------ build
    @classmethod
    def from_bundle(
        cls,
        path: str | Path | Sequence[str | Path],
        *,
        device: str = "auto",
        tta: bool = False,
        overlap: float = 0.5,
        memory_budget_mb: float | None = None,
        **options: Any,
    ) -> Predictor:
        """Load one bundle folder, or several (folds) to ensemble.

        Examples
        --------
        >>> predictor = Predictor.from_bundle("runs/liver/bundle")  # doctest: +SKIP
        >>> labels = predictor(medseg.read("ct.nii.gz"))            # doctest: +SKIP
        """
        paths = [path] if isinstance(path, (str, Path)) else list(path)
        if not paths:
            raise InvalidArgumentError("from_bundle needs at least one bundle folder")
        models, specs = [], []
        for folder in paths:
            model, spec = load_bundle(folder)
            models.append(model)
            specs.append(spec)
        for folder, spec in zip(paths[1:], specs[1:]):
            _compatible(specs[0], spec, str(folder))
        predictor = cls(models, specs[0], device=device, tta=tta, overlap=overlap,
                        memory_budget_mb=memory_budget_mb, sources=[str(p) for p in paths], **options)
        predictor.weights_sha256 = [s.provenance.get("weights_sha256", "") for s in specs]
        return predictor

    # ---------------------------------------------------------------- public
    def __call__(self, volume: Volume) -> Volume:
        """Label map of ``volume`` on its original voxel grid."""
        return self.predict(volume)[0]

    def predict(self, volume: Volume, *, return_probabilities: bool = False,
                preprocessed: Volume | None = None) -> tuple[Volume, Volume | None]:
        """Labels (and optionally class probabilities) on ``volume``'s grid.

        ``preprocessed`` (from :meth:`preprocess`, e.g. computed in a reader
        thread) skips the preprocessing step.

        Returns
        -------
        (labels, probabilities)
            ``labels`` is a uint8 label Volume on the input grid; ``probabilities``
            (channels last, float32) only when ``return_probabilities`` is true.
        """
        net_image = preprocessed if preprocessed is not None else self.preprocess(volume)
        plan = self.memory_plan(volume, network_shape=net_image.shape)
        network = self.network_probabilities(volume, preprocessed=net_image, plan=plan)
        del net_image  # a caller's ``preprocessed`` stays alive; memory_plan counts it throughout
        labels_array = np.empty(volume.shape, dtype=np.uint8)
        probabilities = (np.empty(volume.shape + (self.n_classes,), np.float32)
                         if return_probabilities else None)
        lookup = np.asarray(self.label_values, dtype=np.uint8)
        for k0, k1, slab in self._resample_slabs(network, volume, plan.output_slab_depth):
            labels_array[..., k0:k1] = lookup[np.argmax(slab, axis=-1)]
            if probabilities is not None:
                probabilities[..., k0:k1, :] = slab
            del slab  # one slab alive at a time
        names = {v: n for v, n in self.spec.labels.items() if int(v) != 0}
        meta = self._output_meta(volume)
        labels = Volume(labels_array, volume.affine, "labels", names, meta)
        if self.postprocess and self.spec.postprocessing:
            labels = apply_postprocessing(labels, self.spec.postprocessing)
        prob_volume = None
        if probabilities is not None:
            channel_names = {i: self.spec.labels.get(v, str(v)) for i, v in enumerate(self.label_values)}
            prob_volume = Volume(probabilities, volume.affine, "probabilities", channel_names, meta)
        return labels, prob_volume

    def predict_probabilities(self, volume: Volume) -> Volume:
        """Class probabilities on ``volume``'s grid (kind ``"probabilities"``, channels last)."""
        return self.predict(volume, return_probabilities=True)[1]  # type: ignore[return-value]

    def preprocess(self, volume: Volume) -> Volume:
        """The network-grid image (reoriented, resampled, normalised) the model sees.

        With ``memory_budget_mb`` set and a volume too large for it, the image is
        resampled in z-slabs (see :meth:`memory_plan`).
        """
        self._check_input(volume)
        plan = self.memory_plan(volume) if self.memory_budget_mb is not None else None
        return preprocess_image(volume, target_spacing_mm=self.spec.target_spacing_mm,
                                normalization=self.spec.normalization,
                                orientation=self.spec.orientation,
                                max_working_mb=plan.preprocess_working_mb if plan else None)

    def network_probabilities(self, volume: Volume, *, preprocessed: Volume | None = None,
                              plan: MemoryPlan | None = None) -> Volume:
        """Probabilities on the network grid (before resampling back), channels last."""
        net_image = preprocessed if preprocessed is not None else self.preprocess(volume)
        if plan is None:
            plan = self.memory_plan(volume, network_shape=net_image.shape)
        array = net_image.array
        channels_first = array[None] if array.ndim == 3 else np.moveaxis(array, -1, 0)
        patch = tuple(int(p) for p in self.spec.patch_size)
        if self.spec.spatial_dims == 2:
            patch = patch[:2] + (1,)
        settings = WindowSettings(patch_size=patch, overlap=self.overlap,  # type: ignore[arg-type]
                                  sw_batch_size=self.sw_batch_size, tta=self.tta,
                                  precision=self.precision, progress=self.progress)
        try:
            probabilities = sliding_window_probabilities(
                np.ascontiguousarray(channels_first, dtype=np.float32), self.models,
                n_classes=self.n_classes, settings=settings, device=self.device,
                spatial_dims=self.spec.spatial_dims, slab_depth=plan.network_slab_depth,
                out_dtype=np.dtype(plan.store_dtype),
            )
        except torch.OutOfMemoryError as exc:
            raise InferenceError(
                f"{volume.source}: out of memory during sliding-window inference on {self.device}; "
                "set memory_budget_mb lower, use sw_batch_size=1 or device='cpu'"
            ) from exc
        return net_image.replace(array=probabilities, kind="probabilities",
                                 labels=dict(enumerate(self.label_values)))

    def memory_plan(self, volume: Volume, *, network_shape: Sequence[int] | None = None) -> MemoryPlan:
        """Slab depths and storage type that keep one prediction under ``memory_budget_mb``.

        The estimate follows the three phases of :meth:`predict`: preprocessing
        (network-grid image + resampling working set), sliding windows (image,
        probability store, activations, one slab of accumulators) and resampling
        back (image, store, output labels, one slab of target-grid probabilities).
        Without slabs it is the larger of the preprocessing phase and the sum of
        the other two; the input volume is not counted.
        """
        if network_shape is None:
            network_shape = network_grid(volume, target_spacing_mm=self.spec.target_spacing_mm,
                                         orientation=self.spec.orientation)[1]
        nx, ny, nz = (int(s) for s in network_shape)
        c, cin = self.n_classes, self.spec.in_channels
        patch = list(self.spec.patch_size) + [1] * (3 - len(self.spec.patch_size))
        filters = int(self.spec.model_options.get("base_filters", 32) or 32)
        activations = (self.sw_batch_size * math.prod(patch) * filters
                       * _ACTIVATION_BYTES_PER_VOXEL_FILTER)
        net_input = nx * ny * nz * cin * 4
        per_net_slice = nx * ny * (cin + 2 * c + 1) * 4
        ox, oy, oz = volume.shape
        per_out_slice = ox * oy * (2 * c * 4 + 9)
        labels_out = ox * oy * oz
        store32 = nx * ny * nz * c * 4
        # Whole-volume preprocessing: reoriented copy, float32 copy, scipy's padded copy and
        # float64 spline coefficients of the input, then normalisation temporaries.
        padded = math.prod(n + 24 for n in volume.shape) * cin  # scipy pads 12 voxels a side
        whole_preprocess = (ox * oy * oz * cin * (volume.array.itemsize + 4) + padded * 12
                            + 3 * net_input)
        full = max(net_input + whole_preprocess,
                   net_input + activations + store32 + nz * per_net_slice + labels_out
                   + oz * per_out_slice)
        if self.memory_budget_mb is None:
            return MemoryPlan(None, None, "float32", full / _MIB)
        budget = self.memory_budget_mb * _MIB
        if full <= budget:
            return MemoryPlan(None, None, "float32", full / _MIB)
        store = store32
        fixed = net_input + activations + labels_out
        min_net = (min(nz, 3 * patch[2])) * per_net_slice
        if fixed + store + min_net > budget:
            store //= 2
        store_dtype = "float32" if store == store32 else "float16"
        room = budget - fixed - store
        net_depth = max(int(room // per_net_slice) - 2 * patch[2], max(patch[2] // 2, 1))
        out_depth = max(int(room // per_out_slice), 1)
        preprocess_mb = max((budget - net_input) / _MIB, _MIN_PREPROCESS_MB)
        affine, shape = network_grid(volume, target_spacing_mm=self.spec.target_spacing_mm,
                                     orientation=self.spec.orientation)
        prep_depth = slab_depth_for(volume, affine=affine, shape=shape, order=3,
                                    max_working_mb=preprocess_mb)
        preprocess_peak = net_input + slab_working_bytes(volume, affine=affine, shape=shape,
                                                         order=3, depth=prep_depth)
        estimate = max(fixed + store + max((net_depth + 2 * patch[2]) * per_net_slice,
                                           out_depth * per_out_slice), preprocess_peak)
        if estimate > budget:
            log.warning("%s: memory_budget_mb=%s is below what one slab needs (~%.0f MiB); "
                        "using the smallest slabs", volume.source, self.memory_budget_mb,
                        estimate / _MIB)
        return MemoryPlan(min(net_depth, nz), min(out_depth, oz), store_dtype, estimate / _MIB,
                          preprocess_mb)

    # --------------------------------------------------------------- helpers
    def _check_input(self, volume: Volume) -> None:
        if volume.kind != "image":
            raise InferenceError(f"{volume.source}: expected an image Volume, got kind {volume.kind!r}")
        if volume.n_channels != self.spec.in_channels:
            raise InferenceError(
                f"{volume.source}: the model needs {self.spec.in_channels} channel(s) "
                f"{list(self.spec.channel_names)}, the volume has {volume.n_channels}; "
                "stack the matching sequences as channels"
            )

    def _output_meta(self, volume: Volume) -> dict[str, Any]:
        meta = {k: v for k, v in volume.meta.items() if k in ("source", "modality", "dicom", "case_id")}
        meta["provenance"] = {
            "bundles": self.sources,
            "weights_sha256": list(self.weights_sha256),
            "tta": self.tta,
            "overlap": self.overlap,
            "precision": self.precision,
        }
        return meta

    def _resample_slabs(self, network: Volume, target: Volume, depth: int | None):
        """Yield ``(k0, k1, probabilities)`` slabs of the target grid, resampled in one step.

        Each slab reads only the part of the store it needs (linear interpolation, so
        slabs equal a whole-volume resampling); grids that differ only by axis order
        and flips are copied from a view of the store, without interpolation.
        """
        depth = depth or target.shape[2]
        for k0, k1, slab in iter_resampled_slabs(network, affine=target.affine, shape=target.shape,
                                                 order=1, slab_depth=depth):
            slab = np.asarray(slab, dtype=np.float32)
            yield k0, k1, slab
            del slab
