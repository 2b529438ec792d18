"""Summaries of metric tables: mean, sd, median and count per label over cases.

Used by the ``evaluate`` command and by notebooks; NaN values are left out and counted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medseg.atomic import atomic_path
from medseg.errors import UnsupportedFormatError

__all__ = ["summarize", "write_table"]

_ID_COLUMNS = ("case_id", "label", "label_name", "error", "lesion_id", "status", "size_bin")


def summarize(table: pd.DataFrame, *, by: str = "label_name") -> pd.DataFrame:
    """Mean, standard deviation, median and number of defined values of each metric per group.

    Rows with an ``error`` and boolean flag columns are left out; NaN values (undefined
    metrics such as HD95 with an empty mask) are skipped, and ``n_<metric>`` says how
    many values each mean is over.

    >>> t = pd.DataFrame({"label_name": ["liver", "liver"], "dice": [0.8, 1.0], "hd95_mm": [2.0, np.nan]})
    >>> s = summarize(t)
    >>> round(float(s.loc["liver", "dice_mean"]), 3), int(s.loc["liver", "hd95_mm_n"])
    (0.9, 1)
    """
    data = table
    if "error" in data.columns:
        data = data[data["error"].fillna("") == ""]
    numeric = [c for c in data.columns
               if c not in _ID_COLUMNS and c != by and pd.api.types.is_numeric_dtype(data[c])
               and not pd.api.types.is_bool_dtype(data[c])]
    if by not in data.columns or not numeric:
        return pd.DataFrame()
    values = data[numeric].astype(float).replace([np.inf, -np.inf], np.nan)
    grouped = values.groupby(data[by], sort=False)
    parts = {"mean": grouped.mean(), "sd": grouped.std(), "median": grouped.median(), "n": grouped.count()}
    out = pd.concat({k: v for k, v in parts.items()}, axis=1)
    out.columns = [f"{metric}_{stat}" for stat, metric in out.columns]
    order = [f"{m}_{s}" for m in numeric for s in ("mean", "sd", "median", "n")]
    return out[order]


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a table atomically: ``.csv`` or ``.tsv`` by the file's suffix.

    >>> import tempfile
    >>> out = write_table(pd.DataFrame({"dice": [1.0]}), Path(tempfile.mkdtemp()) / "t.csv")
    >>> out.read_text().splitlines()
    ['dice', '1.0']
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv"):
        raise UnsupportedFormatError(f"{path}: tables are written as .csv or .tsv; change the suffix")
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, sep="," if suffix == ".csv" else "\t")
    return path
