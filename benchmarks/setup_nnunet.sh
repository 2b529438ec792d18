#!/usr/bin/env bash
# Create the nnU-Net v2 benchmark venv (a benchmark-only peer, never a medseg dependency).
# Usage: bash benchmarks/setup_nnunet.sh [VENV_DIR]   (default /work/nnunet-venv; NNUNET_VENV also honoured)
set -euo pipefail

VENV="${1:-${NNUNET_VENV:-/work/nnunet-venv}}"
TORCH_VERSION="2.13.0"
NNUNET_VERSION="2.8.1"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)

# CPU torch first, then nnU-Net constrained to that torch so no CUDA build is pulled in.
"${PIP[@]}" install "torch==${TORCH_VERSION}"
PIN="$(mktemp)"
trap 'rm -f "$PIN"' EXIT
echo "torch==${TORCH_VERSION}" > "$PIN"
"${PIP[@]}" install -c "$PIN" "nnunetv2==${NNUNET_VERSION}" psutil

# nnU-Net imports every sub-package of nnUNetTrainer/ to find trainers; primus/ imports
# timm -> torchvision, which fails beside the CPU torch. Hide that sub-package.
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
PRIMUS="$SITE/nnunetv2/training/nnUNetTrainer/primus"
if [ -f "$PRIMUS/__init__.py" ]; then
    mv "$PRIMUS/__init__.py" "$PRIMUS/__init__.py.disabled-by-medseg"
fi

# Smoke check: the trainer lookup must import cleanly.
"$VENV/bin/python" - <<'PY'
import torch
import nnunetv2
from nnunetv2.run.run_training import get_trainer_from_args  # noqa: F401
from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
from os.path import join
cls = recursive_find_python_class(join(nnunetv2.__path__[0], "training", "nnUNetTrainer"),
                                  "nnUNetTrainer", "nnunetv2.training.nnUNetTrainer")
assert cls is not None, "nnUNetTrainer lookup failed"
print(f"nnU-Net venv ok: torch {torch.__version__}, nnunetv2 from {nnunetv2.__path__[0]}")
PY
echo "$VENV"
