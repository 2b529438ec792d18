"""Supervised lesion detection: the training pipeline on lesion labels, a validated threshold, instances.

``train_lesion_detector`` trains, picks threshold/min size on the validation fold; ``LesionDetector`` applies them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medseg.anomaly.lesions import detect_lesions, lesion_probability, suspicious_score
from medseg.atomic import atomic_write_text
from medseg.errors import BundleError, InvalidArgumentError
from medseg.volume import Volume

__all__ = ["LESION_TRAINING_DEFAULTS", "LesionDetection", "LesionDetector", "lesion_train_config",
           "choose_threshold", "train_lesion_detector"]

log = logging.getLogger(__name__)

_DETECTION_FILE = "lesion_detection.json"
#: Lesion-aware overrides of a training preset: more foreground patches (lesions are small and
#: rare), Dice + cross-entropy (``dice_focal``/``tversky_ce`` are options of TrainConfig.loss).
LESION_TRAINING_DEFAULTS = {"oversample_foreground": 0.66, "loss": "dice_ce"}
_THRESHOLDS = tuple(np.round(np.arange(0.1, 0.96, 0.05), 2))


@dataclass(frozen=True)
class LesionDetection:
    """One case's result: lesion instances, their table, the triage score and the probability map."""

    instances: Volume
    table: pd.DataFrame
    suspicious_score: float
    probability: Volume


def lesion_train_config(base: str | Path | object = "tiny3d", **overrides: object):
    """A :class:`medseg.training.TrainConfig` with the lesion-aware defaults applied.

    ``base`` is a preset name, YAML path or TrainConfig; ``overrides`` win
    over both (e.g. ``loss="dice_focal"``, ``epochs=20``).
    """
    from medseg.training import resolve_config

    config, _ = resolve_config(base)  # type: ignore[arg-type]
    return dataclasses.replace(config, **{**LESION_TRAINING_DEFAULTS, **overrides})


def choose_threshold(
    probabilities: Sequence[Volume],
    references: Sequence[Volume],
    *,
    min_size_mm3: float = 0.0,
    thresholds: Sequence[float] = _THRESHOLDS,
) -> tuple[float, pd.DataFrame]:
    """Probability threshold that maximises lesion-wise F1 on validation cases.

    Uses :func:`medseg.metrics.froc` (IoU >= 0.1 matching, components under
    ``min_size_mm3`` dropped). Ties go to the higher threshold (fewer FPs).

    Returns
    -------
    threshold : float
    table : pandas.DataFrame
        FROC rows with an ``f1`` column, one per threshold.
    """
    from medseg.metrics import froc

    if not probabilities:
        raise InvalidArgumentError("choose_threshold needs at least one validation case")
    probs = [lesion_probability(p) for p in probabilities]
    refs = [r.with_array((r.array > 0).astype(np.uint8)) for r in references]
    table = froc(probs, refs, thresholds=list(thresholds), min_size_mm3=min_size_mm3)
    table["f1"] = 2 * table["tp"] / np.maximum(2 * table["tp"] + table["fp"] + table["fn"], 1)
    best = table.iloc[::-1]["f1"].idxmax()
    return float(table.loc[best, "threshold"]), table


class LesionDetector:
    """A trained lesion segmentation bundle plus its detection threshold and minimum size.

    Examples
    --------
    >>> detector = LesionDetector.from_bundle("runs/lesions/bundle")  # doctest: +SKIP
    >>> found = detector.detect(medseg.read("ct.nii.gz"))              # doctest: +SKIP
    >>> found.table[["lesion_id", "volume_ml", "max_probability"]]     # doctest: +SKIP
    """

    def __init__(self, predictor: object, *, threshold: float = 0.5, min_size_mm3: float = 0.0,
                 lesion_channel: int = 1) -> None:
        self.predictor = predictor
        self.threshold = float(threshold)
        self.min_size_mm3 = float(min_size_mm3)
        self.lesion_channel = int(lesion_channel)

    @classmethod
    def from_bundle(cls, path: str | Path, **predictor_options: object) -> LesionDetector:
        """Load the bundle with :class:`medseg.inference.Predictor` and its ``lesion_detection.json``."""
        from medseg.inference import Predictor

        folder = Path(path)
        predictor = Predictor.from_bundle(folder, **predictor_options)  # type: ignore[arg-type]
        settings = {"threshold": 0.5, "min_size_mm3": 0.0}
        if (folder / _DETECTION_FILE).exists():
            settings.update(json.loads((folder / _DETECTION_FILE).read_text()))
        else:
            log.warning("%s: no %s (threshold not validated); using threshold 0.5", folder,
                        _DETECTION_FILE)
        names = {int(k): v for k, v in predictor.spec.labels.items()}
        channel = next((i for i, v in enumerate(predictor.label_values)
                        if "lesion" in str(names.get(v, "")).lower()), None)
        if channel is None:
            if predictor.n_classes != 2:
                raise BundleError(f"{folder}: bundle has classes {names} and none is named "
                                  "'lesion'; train on a dataset whose lesion label says so")
            channel = 1
        return cls(predictor, threshold=float(settings["threshold"]),
                   min_size_mm3=float(settings["min_size_mm3"]), lesion_channel=channel)

    def probability(self, image: Volume) -> Volume:
        """Lesion probability on the image's grid (3D, kind ``probabilities``)."""
        probabilities = self.predictor.predict_probabilities(image)  # type: ignore[attr-defined]
        return lesion_probability(probabilities, channel=self.lesion_channel)

    def detect(self, image: Volume, *, case_id: str | None = None) -> LesionDetection:
        """Lesion instances, their table and the per-case suspicious score of ``image``."""
        prob = self.probability(image)
        instances, table = detect_lesions(prob, threshold=self.threshold,
                                          min_size_mm3=self.min_size_mm3,
                                          case_id=case_id or image.source)
        return LesionDetection(instances, table, suspicious_score(table), prob)


def _validation_cases(run_dir: Path, dataset: object, fold: int) -> list:
    splits = json.loads((run_dir / "splits.json").read_text())
    val_ids = set(splits[fold]["val"])
    return [c for c in dataset.cases if c.case_id in val_ids]  # type: ignore[attr-defined]


def train_lesion_detector(
    dataset: object,
    *,
    out_dir: str | Path,
    config: object = "tiny3d",
    min_size_mm3: float = 10.0,
    fold: int = 0,
    epochs: int | None = None,
    seed: int = 0,
    progress: bool = True,
    **train_options: object,
) -> tuple[LesionDetector, object]:
    """Train a lesion segmentation model and validate its detection threshold.

    Parameters
    ----------
    dataset
        Anything :func:`medseg.data.load_dataset` opens; label 1 (or the label
        named "lesion") marks lesions.
    out_dir
        Run folder of :func:`medseg.training.train`; the bundle is
        ``out_dir/bundle`` and gets a ``lesion_detection.json`` (threshold,
        min_size_mm3, validation FROC).
    config
        Training preset/YAML/TrainConfig; :data:`LESION_TRAINING_DEFAULTS`
        are applied on top unless the config is a TrainConfig already.
    min_size_mm3
        Lesions smaller than this are dropped (and ignored when matching).

    Returns
    -------
    (LesionDetector, TrainResult)
    """
    from medseg.data import load_dataset
    from medseg.training import TrainConfig, train

    ds = dataset if hasattr(dataset, "cases") else load_dataset(dataset)  # type: ignore[arg-type]
    cfg = config if isinstance(config, TrainConfig) else lesion_train_config(config)
    result = train(ds, out_dir=out_dir, config=cfg, fold=fold, epochs=epochs, seed=seed,
                   progress=progress, **train_options)
    detector = LesionDetector.from_bundle(result.bundle_dir)
    detector.min_size_mm3 = float(min_size_mm3)
    import medseg

    val_cases = _validation_cases(Path(result.run_dir), ds, fold)
    probabilities = [detector.probability(medseg.read(c.image_paths[0], kind="image"))
                     for c in val_cases]
    references = [medseg.read(c.label_path, kind="labels") for c in val_cases]
    threshold, table = choose_threshold(probabilities, references, min_size_mm3=min_size_mm3)
    detector.threshold = threshold
    record = {"threshold": threshold, "min_size_mm3": float(min_size_mm3),
              "chosen_on": [c.case_id for c in val_cases],
              "validation_froc": table.round(6).to_dict(orient="records")}
    atomic_write_text(Path(result.bundle_dir) / _DETECTION_FILE, json.dumps(record, indent=2))
    log.info("lesion threshold %.2f chosen on %d validation cases (F1 %.3f)", threshold,
             len(val_cases), float(table["f1"].max()))
    return detector, result
