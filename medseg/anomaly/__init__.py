"""Anomaly and lesion detection: supervised lesion instances and unsupervised anomaly maps.

Unsupervised: ``train_anomaly_model`` / ``AnomalyScorer``; supervised: ``train_lesion_detector`` / ``detect_lesions``.
"""

from __future__ import annotations

from medseg.anomaly.baseline import ZScoreBaseline
from medseg.anomaly.denoising import DenoisingConfig
from medseg.anomaly.evaluation import auprc, auroc, best_dice, threshold_at_fpr, voxel_scores
from medseg.anomaly.lesions import detect_lesions, suspicious_score
from medseg.anomaly.maps import AnomalyResult, body_mask
from medseg.anomaly.scorer import (
    AnomalyScorer,
    LesionsInNormalDataWarning,
    load_normal_scans,
    train_anomaly_model,
)
from medseg.anomaly.supervised import (
    LesionDetection,
    LesionDetector,
    choose_threshold,
    lesion_train_config,
    train_lesion_detector,
)
from medseg.anomaly.synthetic import make_anomaly_benchmark, make_lesion_case, write_lesion_dataset

__all__ = [
    "AnomalyResult",
    "AnomalyScorer",
    "DenoisingConfig",
    "LesionDetection",
    "LesionDetector",
    "LesionsInNormalDataWarning",
    "ZScoreBaseline",
    "auprc",
    "auroc",
    "best_dice",
    "body_mask",
    "choose_threshold",
    "detect_lesions",
    "lesion_train_config",
    "load_normal_scans",
    "make_anomaly_benchmark",
    "make_lesion_case",
    "suspicious_score",
    "threshold_at_fpr",
    "train_anomaly_model",
    "train_lesion_detector",
    "voxel_scores",
    "write_lesion_dataset",
]
