"""Tests of the parts the report stage is built from: the SVG writer
(pipeline/reports/svg.py) against matplotlib, whose charts it replaced; the charts'
content; the workbook reader of the guard (pipeline/reports/xlsx.py) against openpyxl;
the facts the report context computes once; the workbook's cell styles; the collector
freeze of the report steps; and the whole stage on the sample (its speed is measured by
`make bench`, never asserted here).
"""

from __future__ import annotations

import gc
import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import openpyxl
import pytest

from pipeline.defs.reports import _own_objects_only
from pipeline.reports import charts, html
from pipeline.reports.context import build_context, fingerprint
from pipeline.reports.excel import HEADER_ROW, write_workbook
from pipeline.reports.guard import check_html, check_workbook
from pipeline.reports.svg import Box, Canvas, css_colour, grid, nice_ticks, palette, path_data
from pipeline.reports.texts import decimals, format_number, sheet_names
from pipeline.reports.xlsx import WorkbookError, read_workbook
from tests.test_reports import GENERATED, geometry_for, repo_paths
from tests.test_reports_support import full_published

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    return build_context(full_published(), paths=repo_paths(tmp_path_factory.mktemp("parts")),
                         generated_at=GENERATED)


@pytest.fixture(scope="module")
def geometry(context, tmp_path_factory):
    return geometry_for(context, tmp_path_factory.mktemp("geo"))


@pytest.fixture(scope="module")
def workbook(context, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("xlsx") / "rapport.xlsx"
    write_workbook(context, path)
    return path


def svg_root(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML, or this raises


def texts(root: ET.Element) -> list[str]:
    return [" ".join("".join(t.itertext()).split()) for t in root.iter(f"{SVG}text")]


# ---- the SVG writer, checked against matplotlib ---------------------------------------------------


@pytest.mark.parametrize("upper", [0.5, 1.22, 9.99, 12.2, 121.39, 351.6, 1129.7, 4044.3, 987654.3])
def test_ticks_are_matplotlibs(upper):
    from matplotlib.ticker import MaxNLocator

    expected = [float(t) for t in MaxNLocator(4).tick_values(0, upper) if 0 <= t <= upper]
    assert nice_ticks(upper) == pytest.approx(expected)


def test_grid_cells_are_matplotlibs_gridspec():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.5, 6.0))
    spec = fig.add_gridspec(2, 3, left=0.135, right=0.985, top=0.9, bottom=0.1, wspace=0.62, hspace=0.4,
                            height_ratios=[5, 3])
    bottoms, tops, lefts, rights = spec.get_grid_positions(fig)
    width, height = 756.0, 432.0
    area = Box(0.135 * width, 0.1 * height, 0.85 * width, 0.8 * height)
    cells = grid(area, 2, 3, wspace=0.62, hspace=0.4, height_ratios=[5, 3])
    for i, cell in enumerate(cells):
        row, col = divmod(i, 3)
        assert cell.x == pytest.approx(lefts[col] * width)
        assert cell.right == pytest.approx(rights[col] * width)
        assert cell.y == pytest.approx((1 - tops[row]) * height)
        assert cell.bottom == pytest.approx((1 - bottoms[row]) * height)


def test_colours_are_matplotlibs():
    from matplotlib import colormaps, colors

    assert css_colour("steelblue") == colors.to_hex("steelblue") and css_colour("#1F3B63") == "#1f3b63"
    assert palette("YlGnBu", [0.15, 0.95]) == [colors.to_hex(colormaps["YlGnBu"](p)) for p in (0.15, 0.95)]


def test_canvas_writes_escaped_text_prefixed_ids_and_compact_paths():
    canvas = Canvas(100, 50, "g01x")
    fill = canvas.hatch("hachures", "#bdbdbd", "#6e6e6e")
    canvas.text(10, 10, 'Saint-<Omer> & "Co"\nligne 2', 8, valign="top")
    canvas.path(path_data([[(0, 0), (0.01, 0.02), (10, 0), (10, 10)]]), fill)
    root = svg_root(canvas.svg("Titre & co"))
    assert texts(root) == ['Saint-<Omer> & "Co"', "ligne 2"]
    assert root.find(f"{SVG}title").text == "Titre & co"
    assert {e.get("id") for e in root.iter() if e.get("id")} == {"g01x-titre", "g01x-hachures"}
    assert root.get("aria-labelledby") == "g01x-titre"
    # repeated points (after rounding to 0.1 pt) are dropped, rings are closed
    assert path_data([[(0, 0), (0.01, 0.02), (10, 0), (10, 10)]]) == "M0 0 L10 0 L10 10Z"
    assert path_data([[(0, 0), (5, 5)]], close=False) == "M0 0 L5 5"


# ---- the charts -----------------------------------------------------------------------------------


def test_charts_draw_published_figures_and_symbols_only(context):
    indicator = next(i for i in context.reported_indicators if i.id == "naissances")
    year = context.last_year(indicator)
    digits = decimals(context, indicator)
    chart = charts.communes_chart(context, indicator, year, "g09c")
    drawn = texts(svg_root(chart.svg))
    rows = charts.commune_rows(context, indicator, year)
    published = [format_number(cell[1], digits) for _, cell in rows if cell and cell[0] == "published"]
    masked = [zone for zone, cell in rows if cell and cell[0] == "masked"]
    assert masked, "the test frame has masked communes"
    for label in published:
        assert label in drawn
    assert drawn.count("s") == len(masked)  # a masked commune shows its symbol, never a bar or a number
    assert any(t.startswith("Sources : CAF du Pas-de-Calais, Insee") for t in drawn)
    ids = [e.get("id") for e in svg_root(chart.svg).iter() if e.get("id")]
    assert ids and all(i.startswith("g09c-") for i in ids)  # unique on a page of 36 charts

    trend = svg_root(charts.trend_chart(context, indicator, "g09t").svg)
    assert len([t for t in texts(trend) if t in ("Agglomération (CABBALR)",) or t.startswith("RPE ")]) >= 7


def test_maps_share_one_projection_and_hatch_masked_communes(context, geometry, monkeypatch, tmp_path):
    base = charts.map_base(context, geometry)
    communes = [z.code for z in context.zones() if z.level == "commune"]
    assert set(base.outlines) == set(communes) - set(base.missing)
    assert base.borders and len(base.labels) == len(context.rpes())
    indicator = next(i for i in context.reported_indicators if i.id == "taux_couverture_global")
    year = context.last_year(indicator)
    root = svg_root(charts.map_chart(context, indicator, year, base, "g11m").svg)
    paths = [p for p in root.iter(f"{SVG}path") if p.get("d") in set(base.outlines.values())]
    assert len(paths) == len(base.outlines)  # one path per commune
    hatched = [p for p in paths if p.get("fill") == "url(#g11m-hachures)"]
    masked = [c for c in base.outlines if (context.cell(indicator.id, c, year) or ("",))[0] == "masked"]
    assert len(hatched) == len(masked) > 0

    calls = []
    original = charts.map_base
    monkeypatch.setattr(html, "map_base", lambda *a: calls.append(1) or original(*a))
    html.write_html(context, geometry, tmp_path / "page.html")
    assert len(calls) == 1  # computed once, shared by the twelve maps


# ---- the workbook reader of the guard ------------------------------------------------------------


def test_reader_reads_what_openpyxl_reads(workbook):
    sheets = read_workbook(workbook)
    wb = openpyxl.load_workbook(workbook)
    assert [s.name for s in sheets] == wb.sheetnames
    for sheet, ws in zip(sheets, wb.worksheets):
        expected = {(c.row, c.column): c.value for row in ws.iter_rows() for c in row if c.value is not None}
        assert sheet.values == expected, sheet.name
        assert all(type(sheet.values[k]) is type(v) for k, v in expected.items()), sheet.name
        assert sheet.frozen == (ws.freeze_panes is not None)


def _xlsx(path: Path, sheet_xml: str, shared: str | None = None) -> Path:
    """A minimal workbook written by hand (as Excel writes them: shared strings, rich text)."""
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("xl/workbook.xml", f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
                                      '<sheet name="Feuille" sheetId="1" r:id="rId1"/></sheets></workbook>')
        rels = f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/>'
        if shared is not None:
            rels += f'<Relationship Id="rId2" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/>'
            z.writestr("xl/sharedStrings.xml", f'<sst xmlns="{main}">{shared}</sst>')
        z.writestr("xl/_rels/workbook.xml.rels",
                   f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}'
                   "</Relationships>")
        z.writestr("xl/worksheets/sheet1.xml", f'<worksheet xmlns="{main}">{sheet_xml}</worksheet>')
    return path


def test_reader_handles_what_excel_writes(tmp_path):
    shared = ('<si><t>Source : CAF</t></si><si><r><t>Béthune </t></r><r><rPr><b/></rPr><t>Centre</t></r>'
              '<rPh><t>ignored</t></rPh></si>')
    sheet = ('<sheetViews><sheetView><pane xSplit="2" ySplit="6" topLeftCell="C7" state="frozen"/></sheetView>'
             '</sheetViews><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c>'
             '<c r="C1"><v>2017</v></c><c r="D1"><v>1.5E-3</v></c><c r="AA1" t="b"><v>1</v></c></row>'
             '<row r="2"><c r="A2"><f>SUM(C1:D1)</f><v>2017.0015</v></c><c r="B2" t="e"><v>#DIV/0!</v></c>'
             '<c r="C2" t="inlineStr"><is><t>=HYPERLINK()</t></is></c><c r="D2" t="str"><f>"x"</f><v/></c>'
             '<c r="E2" s="3"/></row></sheetData>')
    [read] = read_workbook(_xlsx(tmp_path / "excel.xlsx", sheet, shared))
    assert read.name == "Feuille" and read.frozen
    assert read.values == {(1, 1): "Source : CAF", (1, 2): "Béthune Centre", (1, 3): 2017, (1, 4): 1.5e-3,
                           (1, 27): True, (2, 1): 2017.0015, (2, 2): "#DIV/0!", (2, 3): "=HYPERLINK()"}
    assert read.formulas == {(2, 1), (2, 4)}


def test_reader_refuses_entities_and_non_workbooks(tmp_path, context):
    bomb = '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&a;</t>'
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(_xlsx(tmp_path / "ok.xlsx", ""), "r") as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("sheet1.xml"):
                data = bomb.encode() + b"</is></c></row></sheetData>"
            dst.writestr(item, data)
    with pytest.raises(WorkbookError, match="DTD"):
        read_workbook(path)
    (tmp_path / "text.xlsx").write_text("not a zip", encoding="utf-8")
    with pytest.raises(WorkbookError, match="not a workbook"):
        read_workbook(tmp_path / "text.xlsx")
    report = check_workbook(path, context)
    assert not report.passed and "cannot be opened" in report.problems[0]


# ---- the context and the workbook's styles ---------------------------------------------------------


def test_context_facts_match_the_frame(context):
    published = context.published
    assert context.data_version == fingerprint(published)[:12]
    for indicator in context.reported_indicators:
        mine = published[published["indicator"] == indicator.id]
        assert context.last_year(indicator) == mine["year"].max()
        values = mine["value"].dropna()
        assert context.integer_valued(indicator) == all(float(v).is_integer() for v in values)
    row = published.iloc[0]
    assert context.cell(row["indicator"], row["zone_code"], int(row["year"]))[0] == row["status"]
    rpe = context.rpes()[0]
    assert context.rpe_name(rpe.code) == rpe.name and context.rpe_name(None) == ""


def test_zone_rows_take_their_level_style(context, workbook):
    wb = openpyxl.load_workbook(workbook)
    ws = wb[sheet_names(context)["naissances"]]
    epci, rpe, commune = (ws.cell(row=HEADER_ROW + i, column=2) for i in (1, 2, 3))
    assert epci.font.b and epci.fill.fgColor.rgb.endswith("D9E1F2") and epci.border.left.style == "thin"
    assert rpe.font.b and rpe.fill.fgColor.rgb.endswith("EDF1F9") and rpe.alignment.indent == 1
    assert not commune.font.b and commune.fill.fill_type is None and commune.alignment.indent == 3
    cells = [c for row in ws.iter_rows(min_row=HEADER_ROW + 1, min_col=5) for c in row]
    numbers = [c for c in cells if isinstance(c.value, (int, float))]
    symbols = [c for c in cells if c.value in ("s", "nd", "///")]
    assert numbers and all(c.number_format == "#,##0" and c.alignment.horizontal == "right" for c in numbers)
    assert symbols and all(c.font.i and c.fill.fgColor.rgb.endswith("F2F2F2") for c in symbols)
    # each combination is registered once in the workbook, not once per cell
    assert len(wb._cell_styles) < 60


# ---- the report steps -----------------------------------------------------------------------------


def test_report_steps_freeze_old_objects_and_hand_them_back():
    assert gc.get_freeze_count() == 0
    with _own_objects_only():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), _own_objects_only():
        raise RuntimeError("a failing report")
    assert gc.get_freeze_count() == 0
    gc.freeze()  # someone else froze objects: left as they are
    try:
        frozen = gc.get_freeze_count()
        with _own_objects_only():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_whole_report_stage_writes_compact_documents_that_pass_their_guards(context, geometry, tmp_path):
    """Both documents and both guards on 12 indicators (how long it takes is `make
    bench`'s business, not a test's): the page carries plain SVG, no matplotlib output."""
    write_workbook(context, tmp_path / "r.xlsx")
    html.write_html(context, geometry, tmp_path / "r.html")
    assert check_workbook(tmp_path / "r.xlsx", context).passed
    assert check_html(tmp_path / "r.html", context, maps_expected=geometry.available).passed
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert len(page) < 3_000_000 and "matplotlib" not in page
    assert not re.search(r"<svg[^>]*>\s*<\?xml", page)
