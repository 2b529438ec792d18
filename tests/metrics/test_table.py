"""Metric-table helpers: atomic CSV/TSV writing and the layering rule (no torch in metrics)."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from medseg.errors import UnsupportedFormatError
from medseg.metrics import write_table


def test_write_table_csv_tsv_and_bad_suffix(tmp_path):
    table = pd.DataFrame({"case_id": ["a"], "dice": [0.5]})
    assert pd.read_csv(write_table(table, tmp_path / "t.csv")).equals(table)
    assert pd.read_csv(write_table(table, tmp_path / "t.tsv"), sep="\t").equals(table)
    with pytest.raises(UnsupportedFormatError, match=".csv or .tsv"):
        write_table(table, tmp_path / "t.xlsx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.tsv"]  # no temp files left


def test_metrics_and_measure_do_not_import_torch():
    code = "import sys, medseg.metrics, medseg.measure; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
