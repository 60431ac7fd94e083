"""Tests of the committee reports (pipeline/reports): the workbook, the HTML page, the
commune geometry, and the guard that re-reads both against published.indicators.

The published frames come from tests/test_reports_support.py: built from the territory
and the indicator definitions, with masked and not_available cells. The full reports are
built once per module and copied for the tampering tests.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import json
import re
import shutil
from pathlib import Path

import duckdb
import openpyxl
import pandas as pd
import pytest

from pipeline.reports.context import (
    ReportError,
    build_context,
    check_published,
    load_report_config,
    read_published,
)
from pipeline.reports.excel import HEADER_ROW, write_workbook
from pipeline.reports.geo import Geometry, load_geometry, read_geojson
from pipeline.reports.guard import check_html, check_workbook, parse_html
from pipeline.reports.html import write_html
from pipeline.reports.texts import format_number, neutralise, parse_number, sheet_names, source_line
from pipeline.settings import PACKAGE_ROOT, Paths
from tests.test_reports_support import (
    SENTINEL,
    full_published,
    synthetic_geojson,
    tiny_published,
    write_warehouse,
)

# the territory's outlines as the project ships them (config/geo/, provenance beside them)
SHIPPED_GEO = PACKAGE_ROOT / "config" / "geo" / "communes-cabbalr.geojson"
GENERATED = dt.datetime(2026, 11, 29, 10, 30)
SMALL_SET = ("am_taux_activite", "naissances", "taux_couverture_global")


def repo_paths(tmp: Path) -> Paths:
    """The repository's config (read only), everything written under tmp."""
    return Paths(root=PACKAGE_ROOT, config=PACKAGE_ROOT / "config", raw=tmp / "raw",
                 warehouse=tmp / "warehouse.duckdb", reports=tmp / "reports")


def geometry_for(context, tmp: Path) -> Geometry:
    """The territory's outlines the project ships."""
    return load_geometry(SHIPPED_GEO, "code", context.territory)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The full reports, built once: (context, geometry, workbook path, page path)."""
    tmp = tmp_path_factory.mktemp("reports")
    context = build_context(full_published(), paths=repo_paths(tmp), generated_at=GENERATED)
    geometry = geometry_for(context, tmp)
    xlsx, page = tmp / "rapport.xlsx", tmp / "rapport.html"
    write_workbook(context, xlsx)
    write_html(context, geometry, page)
    return context, geometry, xlsx, page


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Reports of three indicators (a CAF rate, an Insee count, a Cnaf rate), for the
    tampering tests: (context, geometry, workbook path, page path)."""
    tmp = tmp_path_factory.mktemp("small")
    frame = full_published()
    frame = frame[frame["indicator"].isin(SMALL_SET)]
    context = build_context(frame, paths=repo_paths(tmp), generated_at=GENERATED)
    geometry = geometry_for(context, tmp)
    xlsx, page = tmp / "rapport.xlsx", tmp / "rapport.html"
    write_workbook(context, xlsx)
    write_html(context, geometry, page)
    return context, geometry, xlsx, page


def copy(path: Path, tmp_path: Path) -> Path:
    target = tmp_path / path.name
    shutil.copy2(path, target)
    return target


# ---- the published frame --------------------------------------------------------------------


def test_check_published_refuses_what_must_not_be_shown():
    frame = tiny_published()
    assert len(check_published(frame)) == 3
    leaking = frame.copy()
    leaking.loc[1, "value"] = 3.0  # a masked row carrying its value
    with pytest.raises(ReportError, match="masked or not_available row") as err:
        check_published(leaking)
    assert "3.0" not in str(err.value)
    empty = frame.copy()
    empty.loc[0, "value"] = None
    with pytest.raises(ReportError, match="published row"):
        check_published(empty)
    odd = frame.copy()
    odd.loc[0, "status"] = "ok"
    with pytest.raises(ReportError, match="status"):
        check_published(odd)
    with pytest.raises(ReportError, match="lacks column"):
        check_published(frame.drop(columns="status"))
    doubled = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    with pytest.raises(ReportError, match="duplicated"):
        check_published(doubled)


def test_check_published_against_the_definitions(tmp_path):
    context = build_context(tiny_published(), paths=repo_paths(tmp_path))
    frame = tiny_published()
    frame.loc[0, "indicator"] = "inconnu"
    with pytest.raises(ReportError, match="inconnu"):
        check_published(frame, context.indicators)
    frame = tiny_published()
    frame.loc[0, "year"] = 2021  # naissances cover 2017-2020
    with pytest.raises(ReportError, match="outside"):
        check_published(frame, context.indicators)


def test_read_published_reads_only_the_published_table(tmp_path):
    db = tmp_path / "w.duckdb"
    duckdb.connect(str(db)).close()
    con = duckdb.connect(str(db), read_only=True)
    with pytest.raises(ReportError, match="materialize out_indicators"):
        read_published(con)
    con.close()
    write_warehouse(db, tiny_published())
    con = duckdb.connect(str(db), read_only=True)
    try:
        frame = read_published(con)
    finally:
        con.close()
    assert len(frame) == 3 and SENTINEL not in set(frame["value"].dropna())


def test_report_config_defaults_and_checks(tmp_path):
    paths = repo_paths(tmp_path)
    config = load_report_config(paths)
    assert config.geometry_path == (PACKAGE_ROOT / "config" / "geo" / "communes-cabbalr.geojson").resolve()  # shipped
    assert (config.symbols.masked, config.symbols.not_available) == ("s", "nd")
    own = dataclasses.replace(paths, config=tmp_path / "config")  # a config/ of its own, with catalog.yaml
    own.config.mkdir()
    shutil.copy(PACKAGE_ROOT / "config" / "catalog.yaml", own.config)
    bad = own.config / "report.yaml"
    for text, why in (("symbols:\n  masked: '=1+1'\n", "report.yaml: symbols.masked must not start"),
                      ("symbols:\n  masked: '0'\n", "symbols.masked must not be a number"),
                      ("symbols:\n  masked: nd\n", "the three symbols must differ"),
                      ("symbolz:\n  masked: x\n", "symbolz")):
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(ReportError, match=why):
            load_report_config(own)
    bad.write_text("", encoding="utf-8")
    assert load_report_config(own).geometry_path is None
    bad.unlink()
    assert load_report_config(own).symbols.masked == "s"


def test_french_numbers_round_trip():
    assert format_number(1234.56, 1) == "1\u202f234,6"
    assert format_number(45.0, 0) == "45"
    assert parse_number("1\u202f234,6") == pytest.approx(1234.6)
    assert neutralise("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert neutralise("@SUM") == "'@SUM" and neutralise("-1") == "'-1" and neutralise("+33") == "'+33"
    assert neutralise("Béthune") == "Béthune"


def test_source_lines_name_the_caf_and_the_producer(tmp_path):
    context = build_context(tiny_published(), paths=repo_paths(tmp_path))
    lines = {i.id: source_line(context, i) for i in context.indicators.indicators}
    assert all("CAF du Pas-de-Calais" in line for line in lines.values())
    assert lines["naissances"] == "Sources : CAF du Pas-de-Calais, Insee"
    assert lines["taux_couverture_global"] == "Sources : CAF du Pas-de-Calais, Cnaf"
    assert lines["am_taux_activite"] == "Source : CAF du Pas-de-Calais (Cntpaje)"


# ---- the workbook ---------------------------------------------------------------------------------


def test_workbook_layout(built):
    context, _, xlsx, _ = built
    wb = openpyxl.load_workbook(xlsx)
    names = sheet_names(context)
    assert wb.sheetnames[0] == "Présentation" and wb.sheetnames[-1] == "Méthodologie"
    assert len(wb.sheetnames) == 1 + 12 + 6 + 1
    assert all(len(n) <= 31 for n in wb.sheetnames)

    cover = [c.value for row in wb["Présentation"].iter_rows() for c in row if isinstance(c.value, str)]
    text = " ".join(cover)
    for expected in ("CABBALR – CAF du Pas-de-Calais", "Source : CAF du Pas-de-Calais", "Diagnostic sur le métier",
                     "Sources : CAF du Pas-de-Calais, Insee", "Sources : CAF du Pas-de-Calais, Cnaf",
                     context.data_version, "2017 à 2021", "secret statistique", "article 4"):
        assert expected in text, expected
    assert "s" in cover and "nd" in cover  # the symbols, each explained beside

    ws = wb[names["taux_couverture_global"]]
    assert ws["A1"].value == "Taux de couverture global"
    assert ws["A3"].value == "Sources : CAF du Pas-de-Calais, Cnaf"
    header = [c.value for c in ws[HEADER_ROW]]
    assert header == ["Code", "Zone", "Niveau", "RPE", 2017, 2018, 2019]
    assert ws.freeze_panes == f"C{HEADER_ROW + 1}"
    assert ws.auto_filter.ref.startswith(f"A{HEADER_ROW}:G")
    assert ws.column_dimensions["B"].width >= 30
    # zones: the EPCI, then each RPE followed by its communes
    codes = [ws.cell(row=r, column=1).value for r in range(HEADER_ROW + 1, ws.max_row + 1)]
    territory = context.territory
    expected = [territory.epci_code]
    for rpe in territory.rpe_names:
        expected += [rpe] + list(territory.communes.loc[territory.communes["code_rpe"] == rpe, "code_commune"])
    assert codes == expected

    rpe_code = next(iter(territory.rpe_names))
    ws = wb[names[f"rpe:{rpe_code}"]]
    assert ws["A3"].value == "Sources : CAF du Pas-de-Calais, Insee, Cnaf"
    assert ws.freeze_panes and ws.auto_filter.ref


def test_workbook_cells_equal_published(built):
    """Independent of the guard: every figure of every indicator sheet, read back."""
    context, _, xlsx, _ = built
    wb = openpyxl.load_workbook(xlsx)
    names = sheet_names(context)
    published = context.published
    checked = masked = 0
    for ind in context.reported_indicators:  # each has its sheet (one of the IRIS only has none)
        ws = wb[names[ind.id]]
        years = {c.column: c.value for c in ws[HEADER_ROW] if isinstance(c.value, int)}
        rows = {ws.cell(row=r, column=1).value: r for r in range(HEADER_ROW + 1, ws.max_row + 1)}
        for rec in published[published["indicator"] == ind.id].itertuples():
            column = next(col for col, y in years.items() if y == rec.year)
            cell = ws.cell(row=rows[rec.zone_code], column=column)
            if rec.status == "published":
                assert isinstance(cell.value, (int, float)) and cell.value == pytest.approx(rec.value, abs=1e-9)
                assert cell.number_format in ("#,##0", "#,##0.0")
            else:
                assert cell.value == ("s" if rec.status == "masked" else "nd")
                masked += 1
            checked += 1
    assert checked == len(published) and masked > 100


def test_workbook_passes_the_guard(built):
    context, _, xlsx, _ = built
    report = check_workbook(xlsx, context)
    assert report.passed, report.message()
    assert report.cells_checked > 2 * len(context.published) and report.masked_cells_checked > 100


def _first_cell(ws, predicate):
    for row in ws.iter_rows(min_row=HEADER_ROW + 1):
        for cell in row[4:]:
            if predicate(cell.value):
                return cell
    raise AssertionError("no such cell")


@pytest.mark.parametrize(
    "tamper, expected",
    [
        (lambda ws: setattr(_first_cell(ws, lambda v: isinstance(v, (int, float))), "value", 1e6), "value differs"),
        (lambda ws: setattr(_first_cell(ws, lambda v: v == "s"), "value", 3), "masked cell holds a number"),
        (lambda ws: setattr(_first_cell(ws, lambda v: v == "s"), "value", "3"), "number written as text"),
        (lambda ws: setattr(_first_cell(ws, lambda v: v == "s"), "value", None), "empty cell"),
        (lambda ws: setattr(_first_cell(ws, lambda v: isinstance(v, (int, float))), "value", "12"), "as text"),
        (lambda ws: setattr(ws["A3"], "value", "Données internes"), "no source line"),
        (lambda ws: setattr(ws["A3"], "value", "Source : CAF du Pas-de-Calais"), "Insee"),
        (lambda ws: setattr(ws["Z2"], "value", "=1+1"), "formula"),
        (lambda ws: setattr(ws["Z2"], "value", "@cmd"), "not neutralised"),
        (lambda ws: ws.delete_rows(HEADER_ROW + 3), "missing"),
    ],
)
def test_guard_catches_a_tampered_workbook(small, tmp_path, tamper, expected):
    context, _, xlsx, _ = small
    path = copy(xlsx, tmp_path)
    wb = openpyxl.load_workbook(path)
    tamper(wb[sheet_names(context)["naissances"]])
    wb.save(path)
    report = check_workbook(path, context)
    assert not report.passed
    assert any(expected in p for p in report.problems), report.problems
    assert any("Naissances" in p for p in report.problems)


def test_guard_catches_a_missing_sheet_and_a_stale_workbook(small, tmp_path):
    context, _, xlsx, _ = small
    path = copy(xlsx, tmp_path)
    wb = openpyxl.load_workbook(path)
    del wb["Méthodologie"]
    wb.save(path)
    assert any("Méthodologie" in p for p in check_workbook(path, context).problems)
    # the published table changed since the workbook was written
    newer = context.published.copy()
    first = newer.index[newer["status"] == "published"][0]
    newer.loc[first, "value"] = newer.loc[first, "value"] + 1
    stale = build_context(newer, paths=repo_paths(tmp_path))
    assert not check_workbook(xlsx, stale).passed
    assert not check_workbook(tmp_path / "absent.xlsx", context).passed


def test_formula_injection_is_neutralised(tmp_path):
    frame = tiny_published()
    frame.loc[2, "zone_name"] = "=HYPERLINK(\"http://example.invalid\")"
    context = build_context(frame, paths=repo_paths(tmp_path))
    path = tmp_path / "x.xlsx"
    write_workbook(context, path)
    wb = openpyxl.load_workbook(path)
    texts = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
    injected = [c for c in texts if "HYPERLINK" in c.value]
    assert injected and all(c.value.startswith("'=") and c.data_type == "s" for c in injected)
    assert check_workbook(path, context).passed


def test_tiny_frame_gives_complete_reports(tmp_path):
    """Three rows: a number, a masked RPE, an unavailable commune; no map file."""
    context = build_context(tiny_published(), paths=repo_paths(tmp_path))
    xlsx, page = tmp_path / "x.xlsx", tmp_path / "x.html"
    write_workbook(context, xlsx)
    geometry = load_geometry(None, "code", context.territory)
    write_html(context, geometry, page)
    assert check_workbook(xlsx, context).passed
    assert check_html(page, context, maps_expected=False).passed
    wb = openpyxl.load_workbook(xlsx)
    assert wb.sheetnames[1] == "Naissances" and len(wb.sheetnames) == 1 + 1 + 1 + 1  # one RPE in the frame
    ws = wb["Naissances"]
    values = {ws.cell(row=r, column=1).value: [c.value for c in ws[r][4:]]
              for r in range(HEADER_ROW + 1, ws.max_row + 1)}
    assert list(values) == list(tiny_published()["zone_code"])
    epci, rpe, commune = values.values()
    assert epci == ["nd", "nd", 1234, "nd"]  # the three other years: not in published.indicators => nd
    assert rpe[2] == "s" and commune[2] == "nd"


# ---- the page -------------------------------------------------------------------------------------


def test_page_is_self_contained_and_complete(built):
    context, geometry, _, page = built
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text and "<link" not in text
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    root = parse_html(text)
    figures = [f for f in root.find_all("figure") if f.has_class("graphique")]
    assert len(figures) == 3 * 12
    assert {f.attrs["data-graphique"] for f in figures} == {"tendance", "communes", "carte"}
    for figure in figures:
        assert len(figure.find_all("svg")) == 1
        source = [p.text() for p in figure.find_all("p") if p.has_class("source")]
        assert source and "CAF du Pas-de-Calais" in source[0]
    assert geometry.available and not geometry.missing
    maps = [f for f in figures if f.attrs["data-graphique"] == "carte"]
    assert all(len(m.find_all("path")) >= 100 for m in maps)  # a patch per commune
    # ids stay unique although every chart is an SVG of its own
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids))
    assert "CABBALR – CAF du Pas-de-Calais" in text and "Source : CAF du Pas-de-Calais" in text


def test_page_passes_the_guard(built):
    context, geometry, _, page = built
    report = check_html(page, context, maps_expected=geometry.available)
    assert report.passed, report.message()
    assert report.parts_checked == 36 and report.masked_cells_checked > 50


def _sub_once(text: str, pattern: str, repl) -> str:
    new, n = re.subn(pattern, repl, text, count=1, flags=re.S)
    assert n == 1, pattern
    return new


@pytest.mark.parametrize(
    "tamper, expected",
    [
        (lambda t: _sub_once(t, r'data-valeur="([^"]+)"', 'data-valeur="1e9"'), "value differs"),
        (lambda t: _sub_once(t, r'(data-statut="published" data-valeur="[^"]+">)[^<]+<', r"\g<1>999 999<"),
         "value shown differs"),
        (lambda t: _sub_once(t, r'(data-statut="masked" title="secret statistique">)s<', r"\g<1>4<"),
         "masked cell holds a number"),
        (lambda t: _sub_once(t, r'(data-statut="masked" title="secret statistique">)s<', r"\g<1><"), "empty cell"),
        (lambda t: _sub_once(t, r'(</div>)<p class="source">[^<]*</p>', r'\1<p class="source"></p>'), "no source line"),
        (lambda t: _sub_once(t, r"(<text[^>]*>)Source : CAF du Pas-de-Calais", r"\g<1>D'après"),
         "chart image has no source line"),
        (lambda t: t.replace("</head>", '<script src="https://cdn.example.invalid/x.js"></script></head>'),
         "not self-contained"),
        (lambda t: _sub_once(t, r'<figure class="graphique" id="naissances-carte".*?</figure>', ""),
         "chart missing"),
        (lambda t: _sub_once(t, r'<tr class="commune" data-code="[^"]+".*?</tr>', ""), "missing"),
    ],
)
def test_guard_catches_a_tampered_page(small, tmp_path, tamper, expected):
    context, geometry, _, page = small
    path = tmp_path / "x.html"
    path.write_text(tamper(page.read_text(encoding="utf-8")), encoding="utf-8")
    report = check_html(path, context, maps_expected=geometry.available)
    assert not report.passed
    assert any(expected in p for p in report.problems), report.problems


def test_page_without_geometry_has_a_note_instead_of_maps(tmp_path):
    frame = full_published()
    frame = frame[frame["indicator"].isin(["naissances", "taux_couverture_global"])]
    context = build_context(frame, paths=repo_paths(tmp_path))
    geometry = load_geometry(tmp_path / "absent.geojson", "code", context.territory)
    assert not geometry.available and "absent" in geometry.problem
    page = tmp_path / "x.html"
    stats = write_html(context, geometry, page)
    assert stats["maps"] == 0 and stats["charts"] == 4
    text = page.read_text(encoding="utf-8")
    assert text.count('class="note-carte"') == 2 and "docs/reports.md" in text
    assert check_html(page, context, maps_expected=False).passed
    assert not check_html(page, context, maps_expected=True).passed


# ---- geometry ---------------------------------------------------------------------------------------


def test_geometry_join_reports_codes_without_outline(tmp_path):
    context = build_context(tiny_published(), paths=repo_paths(tmp_path))
    territory = context.territory
    dropped = tuple(territory.communes["code_commune"].iloc[:2])
    path = synthetic_geojson(tmp_path / "g.geojson", territory, drop=dropped)
    geometry = read_geojson(path, "code", territory)
    assert geometry.missing == sorted(dropped)
    assert len(geometry.shapes) == len(territory.communes) - 2


def test_geometry_former_codes_are_mapped(tmp_path):
    context = build_context(tiny_published(), paths=repo_paths(tmp_path))
    territory = context.territory
    code = territory.communes["code_commune"].iloc[0]
    path = synthetic_geojson(tmp_path / "g.geojson", territory, codes={code: "62999"})
    assert code in read_geojson(path, "code", territory).missing
    from dataclasses import replace

    moved = replace(territory, code_changes={"62999": code})
    assert not read_geojson(path, "code", moved).missing


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "not a JSON"), (json.dumps({"type": "Feature"}), "FeatureCollection"),
     (json.dumps({"type": "FeatureCollection", "features": []}), "no feature")],
)
def test_unusable_geometry_gives_a_note_not_a_crash(tmp_path, content, message):
    context = build_context(tiny_published(), paths=repo_paths(tmp_path))
    path = tmp_path / "g.geojson"
    path.write_text(content, encoding="utf-8")
    geometry = load_geometry(path, "code", context.territory)
    assert not geometry.available and message in geometry.problem


def test_shipped_outlines_cover_every_commune_and_rpe_borders_close(tmp_path):
    context = build_context(tiny_published(), paths=repo_paths(tmp_path))
    geometry = read_geojson(SHIPPED_GEO, "code", context.territory)
    assert not geometry.missing and len(geometry.shapes) == 100
    for rpe in context.territory.rpe_names:
        codes = list(context.territory.communes.loc[context.territory.communes["code_rpe"] == rpe, "code_commune"])
        lines = geometry.boundary_lines(codes)
        assert lines and all((line[0] == line[-1]).all() for line in lines)  # closed outer borders


# ---- what the reports may read --------------------------------------------------------------------


def _code_strings(path: Path) -> list[str]:
    """String constants of a module, docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
                docstrings.add(id(node.body[0].value))
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docstrings]


def test_report_code_names_no_confidential_table():
    modules = (sorted((PACKAGE_ROOT / "pipeline" / "reports").glob("*.py"))
               + [PACKAGE_ROOT / "pipeline" / "defs" / "reports.py"])
    for module in modules:
        for text in _code_strings(module):
            assert not re.search(r"\b(confidential|staging|raw|lineage)\.\w", text), (module.name, text)
