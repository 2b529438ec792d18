"""Short-schedule nnU-Net v2 trainer for medseg's side-by-side benchmarks (runs inside the nnU-Net venv).

Found by nnU-Net through ``nnUNet_extTrainer``; records per-iteration timings to a JSON file.
"""

# The schedule comes from environment variables because nnUNetv2_train builds the trainer itself
# and passes no extra arguments; benchmarks/_nnunet.py sets them in the subprocess only:
#   MEDSEG_NNUNET_EPOCHS, MEDSEG_NNUNET_ITERATIONS (per epoch), MEDSEG_NNUNET_VAL_ITERATIONS,
#   MEDSEG_NNUNET_TIMINGS (path of the JSON written at the end of training),
#   MEDSEG_NNUNET_FINAL_VALIDATION ("1" runs nnU-Net's own end-of-training validation; default "0":
#   the benchmark predicts the held-out cases itself, without TTA, and scores them with medseg).

import json
import os
import time

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainerMedsegBench(nnUNetTrainer):  # noqa: N801  (nnU-Net looks the class up by name)
    """nnUNetTrainer with a configurable short schedule and per-iteration wall-clock timings."""

    # nnU-Net records its __init__ arguments by signature: keep exactly the parent's parameters.
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):  # noqa: B008
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = int(os.environ.get("MEDSEG_NNUNET_EPOCHS", "1"))
        self.num_iterations_per_epoch = int(os.environ.get("MEDSEG_NNUNET_ITERATIONS", "50"))
        self.num_val_iterations_per_epoch = int(os.environ.get("MEDSEG_NNUNET_VAL_ITERATIONS", "2"))
        self.save_every = 10**9  # only checkpoint_final; saving mid-run would distort the timings
        self._timings_path = os.environ.get("MEDSEG_NNUNET_TIMINGS")
        self._step_seconds = []  # forward + loss + backward + optimizer step
        self._iteration_seconds = []  # start-to-start wall time, includes waiting for augmented batches
        self._last_step_start = None
        self._train_started = None

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        self._last_step_start = None  # an epoch boundary (validation, logging) is not an iteration

    def on_train_start(self):
        super().on_train_start()
        self._train_started = time.perf_counter()

    def train_step(self, batch):
        start = time.perf_counter()
        if self._last_step_start is not None:
            self._iteration_seconds.append(start - self._last_step_start)
        self._last_step_start = start
        result = super().train_step(batch)
        self._step_seconds.append(time.perf_counter() - start)
        return result

    def perform_actual_validation(self, save_probabilities=False):
        if os.environ.get("MEDSEG_NNUNET_FINAL_VALIDATION", "0") == "1":
            super().perform_actual_validation(save_probabilities)

    def on_train_end(self):
        train_seconds = time.perf_counter() - self._train_started if self._train_started else None
        super().on_train_end()
        if self._timings_path and self.local_rank == 0:
            record = {
                "epochs": self.num_epochs,
                "iterations_per_epoch": self.num_iterations_per_epoch,
                "val_iterations_per_epoch": self.num_val_iterations_per_epoch,
                "batch_size": self.batch_size,
                "patch_size": [int(p) for p in self.configuration_manager.patch_size],
                "step_seconds": self._step_seconds,
                "iteration_seconds": self._iteration_seconds,
                "train_loop_seconds": train_seconds,
                "pseudo_dice_per_epoch": [float(x) for x in
                                          self.logger.get_value("mean_fg_dice", step=None)],
            }
            tmp = f"{self._timings_path}.part"
            with open(tmp, "w") as handle:
                json.dump(record, handle, indent=2)
            os.replace(tmp, self._timings_path)
