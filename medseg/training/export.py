"""Export a trained bundle's network to TorchScript or ONNX for serving outside medseg.

The exported graph takes ``(batch, channels, *spatial)`` normalised patches and returns logits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Literal

import torch

from medseg.atomic import atomic_path
from medseg.errors import BundleError, MissingExtraError

__all__ = ["export_model", "find_bundle"]

log = logging.getLogger(__name__)

_SUFFIX = {"torchscript": ".torchscript.pt", "onnx": ".onnx"}


def find_bundle(source: str | Path) -> Path:
    """The bundle folder of a run folder (``RUN/bundle``) or the bundle folder itself."""
    source = Path(source)
    for candidate in (source, source / "bundle"):
        if (candidate / "bundle.yaml").exists():
            return candidate
    raise BundleError(f"{source}: neither a training run folder nor a model bundle (no bundle.yaml); "
                      "pass the folder `medseg train` wrote")


def export_model(
    source: str | Path,
    *,
    format: Literal["torchscript", "onnx"] = "torchscript",
    out: str | Path | None = None,
    opset: int = 17,
) -> Path:
    """Write the network of a run/bundle as TorchScript (traced) or ONNX.

    Parameters
    ----------
    source : path
        Run folder or bundle folder.
    format : {"torchscript", "onnx"}
        ONNX needs the ``onnx`` extra (``pip install medseg[onnx]``); batch and spatial
        axes are dynamic.
    out : path, optional
        Output file; default ``<bundle>/model.torchscript.pt`` or ``<bundle>/model.onnx``.

    Returns
    -------
    Path
        The exported file.
    """
    from medseg.inference.bundle import load_bundle

    if format not in _SUFFIX:
        raise BundleError(f"unknown export format {format!r}; use 'torchscript' or 'onnx'")
    bundle = find_bundle(source)
    model, spec = load_bundle(bundle)
    example = torch.zeros(1, spec.in_channels, *spec.patch_size)
    target = Path(out) if out is not None else bundle / f"model{_SUFFIX[format]}"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer/exporter chatter about constant shapes
        if format == "torchscript":
            traced = torch.jit.trace(model, example, check_trace=False)
            with atomic_path(target) as tmp:
                torch.jit.save(traced, str(tmp))
        else:
            try:
                import onnx  # noqa: F401
            except ImportError as exc:
                raise MissingExtraError("ONNX export needs the onnx package: pip install 'medseg[onnx]'"
                                        ) from exc
            axes = {0: "batch", **{2 + i: f"spatial_{i}" for i in range(spec.spatial_dims)}}
            with atomic_path(target) as tmp:
                torch.onnx.export(model, (example,), str(tmp), input_names=["image"],
                                  output_names=["logits"], opset_version=opset, dynamo=False,
                                  dynamic_axes={"image": axes, "logits": axes})
    log.info("exported %s to %s", bundle, target)
    return target
