"""What the committee reports say must be true and readable (issue 26): the evolution charts'
note whole, the legend as written, the workbook's Présentation rows high enough for their text
in LibreOffice (which, unlike Excel, keeps the rows' default height)."""

from __future__ import annotations

import html
import math
import xml.etree.ElementTree as ET

import openpyxl
import pytest

from pipeline.reports import charts
from pipeline.reports.context import build_context
from pipeline.reports.excel import write_workbook
from pipeline.reports.html import write_html
from pipeline.reports.texts import symbol_legend
from tests.test_reports import GENERATED, geometry_for, repo_paths
from tests.test_reports_support import full_published

SVG = "{http://www.w3.org/2000/svg}"
# DejaVu Sans, the charts' font: an average French letter is about 0.55 of the font size wide
LETTER_WIDTH = 0.55


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    return build_context(full_published(), paths=repo_paths(tmp_path_factory.mktemp("truth")),
                         generated_at=GENERATED)


def test_the_evolution_charts_note_is_whole_and_inside_the_picture(context):
    for indicator in context.reported_indicators:
        root = ET.fromstring(charts.trend_chart(context, indicator, "t").svg)
        width = float(root.get("viewBox").split()[2])
        lines = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
        assert "ne pas la compter comme zéro" in " ".join(lines), indicator.id
        for text in root.iter(f"{SVG}text"):
            if text.get("text-anchor", "start") == "start":
                words = "".join(text.itertext())
                end = float(text.get("x")) + len(words) * LETTER_WIDTH * float(text.get("font-size"))
                assert end <= width, (indicator.id, words)


def test_the_html_legend_keeps_its_wording(context, tmp_path):
    page = tmp_path / "rapport.html"
    write_html(context, geometry_for(context, tmp_path), page)
    text = page.read_text(encoding="utf-8")
    for _symbol, meaning in symbol_legend(context):
        shown = meaning[:1].upper() + meaning[1:]
        assert f"<dd>{html.escape(shown)}</dd>" in text, meaning[:40]
    assert "Ne pas la compter comme un zéro" in text and "ne pas la compter comme un zéro" not in text


def test_presentation_rows_are_high_enough_for_their_text(context, tmp_path):
    path = tmp_path / "rapport.xlsx"
    write_workbook(context, path)
    workbook = openpyxl.load_workbook(path)
    for ws in (workbook.worksheets[0], workbook.worksheets[-1]):  # Présentation, Méthodologie
        widths = {k: d.width for k, d in ws.column_dimensions.items() if d.width}
        for row in ws.iter_rows():
            for cell in row:
                if not (isinstance(cell.value, str) and cell.alignment.wrap_text):
                    continue
                merged = next((r for r in ws.merged_cells.ranges if cell.coordinate in r), None)
                width = (sum(widths.get(openpyxl.utils.get_column_letter(c), 8.43)
                             for c in range(merged.min_col, merged.max_col + 1)) if merged
                         else widths.get(cell.column_letter, 8.43))
                lines = sum(max(1, math.ceil(len(p) / width)) for p in cell.value.split("\n"))
                height = ws.row_dimensions[cell.row].height or 15
                # 15 points a line of 11-point text, a tenth of slack for the estimate of the width
                assert height >= 0.9 * 15 * lines, (ws.title, cell.coordinate, lines, height)
