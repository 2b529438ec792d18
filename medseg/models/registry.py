"""Model registry: one factory that builds a U-Net variant from a plan's network options.

Names: ``dynunet`` (nnU-Net style), ``resenc_unet`` (residual encoder), ``unet_small`` (CPU).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

import torch

from medseg.errors import ModelError

__all__ = ["create_model", "available_models", "register_model", "default_topology"]

_REGISTRY: dict[str, Callable[..., torch.nn.Module]] = {}


def register_model(name: str) -> Callable:
    """Decorator adding a network factory to the registry under ``name``."""

    def add(factory: Callable[..., torch.nn.Module]) -> Callable[..., torch.nn.Module]:
        _REGISTRY[name] = factory
        return factory

    return add


def available_models() -> list[str]:
    """Sorted names accepted by :func:`create_model`."""
    return sorted(_REGISTRY)


def default_topology(
    patch_size: Sequence[int], *, spacing_mm: Sequence[float] | None = None, min_size: int = 4,
    max_stages: int = 6,
) -> tuple[list[list[int]], list[list[int]]]:
    """nnU-Net-style kernel sizes and strides for a patch (and spacing).

    An axis is pooled while its feature map stays >= ``2 * min_size`` and,
    with anisotropic spacing, while its spacing is at most twice the finest
    one; kernels on axes not yet pooled because of coarse spacing are 1.

    >>> default_topology((64, 64, 64))[1]
    [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
    """
    size = [int(s) for s in patch_size]
    spacing = [1.0] * len(size) if spacing_mm is None else [float(s) for s in spacing_mm]
    kernels = [[3 if s <= 2 * min(spacing) else 1 for s in spacing]]
    strides = [[1] * len(size)]
    while len(strides) < max_stages:
        finest = min(spacing)
        stride = [2 if (size[a] >= 2 * min_size and spacing[a] <= 2 * finest) else 1
                  for a in range(len(size))]
        if not any(s == 2 for s in stride):
            break
        for axis, s in enumerate(stride):
            size[axis] //= s
            spacing[axis] *= s
        strides.append(stride)
        kernels.append([3 if spacing[a] <= 2 * min(spacing) else 1 for a in range(len(size))])
    return kernels, strides


def _dynunet(
    *,
    spatial_dims: int = 3,
    in_channels: int = 1,
    out_channels: int = 2,
    kernel_size: Sequence[Sequence[int]] | None = None,
    strides: Sequence[Sequence[int]] | None = None,
    filters: Sequence[int] | None = None,
    patch_size: Sequence[int] | None = None,
    deep_supervision: bool = False,
    deep_supr_num: int = 1,
    res_block: bool = False,
    norm_name: str = "instance",
    max_filters: int = 320,
    base_filters: int = 32,
) -> torch.nn.Module:
    from monai.networks.nets import DynUNet

    if kernel_size is None or strides is None:
        if patch_size is None:
            patch_size = (64,) * spatial_dims
        kernel_size, strides = default_topology(patch_size)
    if len(kernel_size) != len(strides):
        raise ModelError(f"kernel_size has {len(kernel_size)} stages but strides has {len(strides)}")
    if filters is None:
        filters = [min(base_filters * 2**i, max_filters) for i in range(len(strides))]
    if len(filters) != len(strides):
        raise ModelError(f"filters has {len(filters)} entries, need one per stage ({len(strides)})")
    deep_supr_num = max(1, min(int(deep_supr_num), len(strides) - 2))
    norm = ("INSTANCE", {"affine": True}) if norm_name == "instance" else norm_name
    return DynUNet(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=[list(k) for k in kernel_size],
        strides=[list(s) for s in strides],
        upsample_kernel_size=[list(s) for s in strides[1:]],
        filters=list(filters),
        norm_name=norm,
        deep_supervision=deep_supervision,
        deep_supr_num=deep_supr_num,
        res_block=res_block,
    )


@register_model("dynunet")
def _build_dynunet(**options: Any) -> torch.nn.Module:
    """nnU-Net-like dynamic U-Net (MONAI DynUNet), 32..320 filters."""
    return _dynunet(**options)


@register_model("resenc_unet")
def _build_resenc(**options: Any) -> torch.nn.Module:
    """DynUNet with residual blocks in every stage."""
    options.setdefault("res_block", True)
    return _dynunet(**options)


@register_model("unet_small")
def _build_small(**options: Any) -> torch.nn.Module:
    """A narrow DynUNet (16..128 filters) for fast CPU training."""
    options.setdefault("base_filters", 16)
    options.setdefault("max_filters", 128)
    return _dynunet(**options)


def create_model(name: str, **options: Any) -> torch.nn.Module:
    """Build a registered network.

    Parameters
    ----------
    name : str
        One of :func:`available_models`.
    **options
        Network options from the plan: ``spatial_dims``, ``in_channels``,
        ``out_channels``, ``kernel_size``, ``strides``, ``filters``,
        ``deep_supervision``, ...

    Examples
    --------
    >>> net = create_model("unet_small", spatial_dims=3, out_channels=3, patch_size=(32, 32, 32))
    >>> type(net).__name__
    'DynUNet'
    >>> create_model("unet3d")
    Traceback (most recent call last):
    ...
    medseg.errors.ModelError: unknown model 'unet3d' (did you mean 'dynunet'?); valid names: dynunet, resenc_unet, unet_small
    """
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ModelError(f"unknown model {name!r}{hint}; valid names: {', '.join(available_models())}")
    try:
        return _REGISTRY[name](**options)
    except TypeError as exc:
        raise ModelError(f"model {name!r}: invalid option ({exc})") from exc
