"""Tests of medseg.demo.report: a single self-contained HTML file with tables and PNG figures."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
from PIL import Image

from medseg.demo import HtmlReport
from medseg.viz import new_figure


def test_report_embeds_figures_and_formats_tables(tmp_path):
    fig = new_figure((4.0, 2.0))
    fig.add_subplot().imshow(np.random.default_rng(0).uniform(size=(8, 16)))
    report = HtmlReport("Demo <run>", dpi=50)
    report.add_heading("Results")
    report.add_figure(fig, caption="noise")
    report.add_table(pd.DataFrame({"case_id": ["a", "b"], "dice": [0.91234, np.nan],
                                   "hd95_mm": [1.5, np.inf], "n": [3, 4]}), caption="metrics")
    path = report.write(tmp_path / "report.html")
    text = path.read_text()
    assert "<title>Demo &lt;run&gt;</title>" in text
    assert "<td>0.912</td>" in text and "<td>–</td>" in text and "<td>∞</td>" in text
    assert "<td>3</td>" in text and '<td class="text">a</td>' in text
    # No external references: the only image source is an inline data URI.
    assert "http" not in text.replace("http-equiv", "")
    sources = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(sources) == 1
    with Image.open(io.BytesIO(base64.b64decode(sources[0]))) as img:
        assert img.size == (200, 100)
        assert len(np.unique(np.asarray(img.convert("L")))) > 16
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_long_tables_are_truncated_with_a_note():
    report = HtmlReport("t")
    report.add_table(pd.DataFrame({"x": range(10)}), max_rows=3)
    html = report.to_html()
    assert html.count("<tr><td>") == 3 and "First 3 of 10 rows" in html
