"""Training: a readable loop over cached patches, with checkpoints, validation, DDP and export.

``train(dataset, out_dir=..., config="3d")`` returns a :class:`TrainResult` whose ``bundle_dir`` predicts.
"""

from medseg.training.config import TrainConfig, available_configs, resolve_config
from medseg.training.trainer import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train", "resolve_config", "available_configs"]
