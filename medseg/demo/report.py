"""A self-contained HTML report: headings, text, tables and figures embedded as base64 PNGs.

One file that opens in any browser, with nothing beside it and nothing fetched from the network.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from medseg.atomic import atomic_write_text
from medseg.viz.figures import figure_to_png_bytes

__all__ = ["HtmlReport"]

_STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #1f77b4; padding-bottom: .2em; }
h2 { margin-top: 1.6em; color: #1f4e79; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #eef3f8; }
td.text { text-align: left; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #555; }
.meta { color: #666; font-size: 0.85em; }
code { background: #f4f4f4; padding: 0 .25em; }
"""


def _format_cell(value: object, digits: int) -> tuple[str, bool]:
    """Cell text and whether it is text (left-aligned) rather than a number."""
    if isinstance(value, bool):
        return str(value), True
    if isinstance(value, int):
        return str(value), False
    if isinstance(value, float):
        if math.isnan(value):
            return "–", False
        if math.isinf(value):
            return "∞" if value > 0 else "-∞", False
        return f"{value:.{digits}f}", False
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _format_cell(value.item(), digits)
    return html.escape(str(value)), True


@dataclass
class HtmlReport:
    """Build an HTML report step by step, then :meth:`write` it atomically.

    Figures are rendered to PNG and embedded as base64 data URIs, so the
    single ``.html`` file is the whole report.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> report = HtmlReport("Demo")
    >>> report.add_text("Hello <world>")
    >>> report.add_table(pd.DataFrame({"case_id": ["a"], "dice": [0.91234]}), caption="Metrics")
    >>> path = report.write(pathlib.Path(tempfile.mkdtemp()) / "report.html")
    >>> text = path.read_text()
    >>> "Hello &lt;world&gt;" in text, "0.912" in text
    (True, True)
    """

    title: str
    parts: list[str] = field(default_factory=list)
    dpi: float = 100.0

    def add_heading(self, text: str, *, level: int = 2) -> None:
        """Add a section heading (``<h2>`` by default)."""
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def add_text(self, text: str, *, css_class: str | None = None) -> None:
        """Add a paragraph of plain text (escaped)."""
        attribute = f' class="{html.escape(css_class)}"' if css_class else ""
        self.parts.append(f"<p{attribute}>{html.escape(text)}</p>")

    def add_list(self, items: list[str]) -> None:
        """Add a bulleted list of plain-text items."""
        body = "".join(f"<li>{html.escape(item)}</li>" for item in items)
        self.parts.append(f"<ul>{body}</ul>")

    def add_figure(self, fig: Figure, *, caption: str = "", alt: str | None = None) -> bytes:
        """Embed a matplotlib figure as a base64 PNG with a caption; returns the PNG bytes."""
        png = figure_to_png_bytes(fig, dpi=self.dpi)
        self.add_png(png, caption=caption, alt=alt)
        return png

    def add_png(self, png: bytes, *, caption: str = "", alt: str | None = None) -> None:
        """Embed PNG bytes as a base64 data URI with a caption."""
        data = base64.b64encode(png).decode("ascii")
        alt_text = html.escape(alt or caption or "figure")
        self.parts.append(
            f'<figure><img alt="{alt_text}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def add_table(self, table: pd.DataFrame, *, caption: str = "", digits: int = 3,
                  max_rows: int = 200) -> None:
        """Add a table; floats get ``digits`` decimals, NaN shows as a dash, inf as ∞."""
        shown = table.head(max_rows)
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
        rows = []
        for record in shown.itertuples(index=False):
            cells = []
            for value in record:
                text, is_text = _format_cell(value, digits)
                cells.append(f'<td class="text">{text}</td>' if is_text else f"<td>{text}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        note = ""
        if len(table) > max_rows:
            note = f"<p class='meta'>First {max_rows} of {len(table)} rows.</p>"
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead>"
                          f"<tbody>{''.join(rows)}</tbody></table>{note}")

    def to_html(self) -> str:
        """The complete HTML document as a string."""
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        body = "\n".join(self.parts)
        return (
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>\n"
            f"<body><h1>{html.escape(self.title)}</h1>"
            f"<p class='meta'>Generated {stamp} by medseg.</p>\n{body}\n</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Write the report atomically to ``path`` and return it."""
        return atomic_write_text(Path(path), self.to_html())
