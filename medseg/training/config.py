"""Training options as a frozen dataclass, read strictly from YAML (``configs/*.yaml``).

``resolve_config`` accepts a preset name (``"3d"``, ``"tiny3d"``), a YAML path or a TrainConfig.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from medseg.config import load_yaml
from medseg.data.transforms import AugmentationConfig
from medseg.errors import ConfigError

__all__ = ["TrainConfig", "resolve_config", "config_search_path", "available_configs"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that shapes a training run; ``None`` means "take it from the plan".

    ``configuration`` picks the 3D or 2D plan; ``patch_size``, ``batch_size``,
    ``model_name``, ``filters`` and ``target_spacing_mm`` override the plan's choices.
    """

    configuration: Literal["3d", "2d"] = "3d"
    epochs: int = 100
    iterations_per_epoch: int = 250
    val_every: int = 1
    folds: int = 5
    patch_size: tuple[int, ...] | None = None
    batch_size: int | None = None
    model_name: str | None = None
    filters: tuple[int, ...] | None = None
    target_spacing_mm: tuple[float, float, float] | None = None
    memory_budget_mb: float | None = None
    deep_supervision: bool = True
    loss: Literal["dice_ce", "dice_focal", "tversky_ce"] = "dice_ce"
    tversky_alpha: float = 0.3
    optimizer: Literal["sgd", "adamw"] = "sgd"
    learning_rate: float = 0.01
    weight_decay: float = 3e-5
    momentum: float = 0.99
    lr_schedule: Literal["poly", "constant"] = "poly"
    poly_exponent: float = 0.9
    grad_clip: float = 12.0
    cpu_bf16: Literal["auto", True, False] = "auto"
    cuda_amp: bool = True
    deterministic: bool = False
    num_workers: int = 2
    num_threads: int | None = None
    oversample_foreground: float = 0.33
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    sw_overlap: float = 0.5
    ema_momentum: float = 0.9
    tensorboard: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "iterations_per_epoch", "val_every", "num_workers"):
            if getattr(self, name) < (0 if name == "num_workers" else 1):
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ConfigError(f"num_threads must be >= 1 (or null for torch's default), got {self.num_threads}")
        if self.folds < 2:
            raise ConfigError(f"folds must be >= 2, got {self.folds}")
        if not 0.0 <= self.oversample_foreground <= 1.0:
            raise ConfigError(f"oversample_foreground must be in [0, 1], got {self.oversample_foreground}")
        if self.patch_size is not None and len(self.patch_size) != (3 if self.configuration == "3d" else 2):
            raise ConfigError(f"patch_size {list(self.patch_size)} does not fit configuration "
                              f"{self.configuration!r}; give {3 if self.configuration == '3d' else 2} values")


def config_search_path() -> list[Path]:
    """Folders searched for ``NAME.yaml`` presets: the repository's ``configs/``, then packaged ones."""
    package = Path(__file__).resolve().parent.parent
    return [package.parent / "configs", package / "configs"]


def available_configs() -> list[str]:
    """Names of the preset configs found on :func:`config_search_path`."""
    return sorted({p.stem for folder in config_search_path() if folder.is_dir()
                   for p in folder.glob("*.yaml")})


def resolve_config(config: str | Path | TrainConfig) -> tuple[TrainConfig, str]:
    """Turn a preset name, YAML path or TrainConfig into ``(TrainConfig, description)``."""
    if isinstance(config, TrainConfig):
        return config, "TrainConfig"
    path = Path(config)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_yaml(path, TrainConfig), str(path)
    for folder in config_search_path():
        candidate = folder / f"{config}.yaml"
        if candidate.exists():
            return load_yaml(candidate, TrainConfig), str(candidate)
    raise ConfigError(f"unknown training config {str(config)!r}; use a YAML path or one of "
                      f"{', '.join(available_configs()) or '(no presets found)'}")
