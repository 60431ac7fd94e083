"""The guard of the documents written to reports/: re-read each file and compare it with
`published.indicators`.

A report fails the guard when:
- a figure differs from `published.indicators` (value, status, a zone or year missing or
  added), or a published figure is written as text;
- a masked or unavailable cell holds a number (or is blank, which reads as zero), or shows
  another text than its symbol;
- a sheet, the page or a chart lacks its source line naming the CAF (and the Cnaf / Insee
  for their indicators), or the double sign-off is missing (convention, article 3);
- the workbook holds a formula or a text a spreadsheet would read as one;
- the page loads anything from outside the file.

Problems name places (sheet and cell, indicator, zone code, year), never a value.

The workbook is read back by `xlsx.py` (the values, formulas and frozen panes, streamed
from the file's XML); the page by a small tree builder over `html.parser`, walked once per
part it checks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from pipeline.config_models.report import FORMULA_START
from pipeline.indicators import Indicator
from pipeline.reports.context import ReportContext
from pipeline.reports.excel import HEADER_CODE, HEADER_INDICATOR
from pipeline.reports.texts import (
    decimals,
    iris_row_label,
    parse_number,
    producers_required,
    sheet_names,
)
from pipeline.reports.xlsx import Sheet, coordinate, read_workbook

MAX_LISTED = 200
_DIGIT = re.compile(r"\d")


@dataclass
class GuardReport:
    file: str
    problems: list[str] = field(default_factory=list)
    n_problems: int = 0
    cells_checked: int = 0
    masked_cells_checked: int = 0
    parts_checked: int = 0  # sheets or charts

    def add(self, problem: str) -> None:
        self.n_problems += 1
        if len(self.problems) < MAX_LISTED:
            self.problems.append(problem)

    @property
    def passed(self) -> bool:
        return self.n_problems == 0

    def message(self) -> str:
        if self.passed:
            return f"{self.file}: passes ({self.cells_checked} cells compared with published.indicators)"
        more = f"\n... and {self.n_problems - len(self.problems)} more" if self.n_problems > len(self.problems) else ""
        return (
            f"{self.file}: {self.n_problems} problem(s) against published.indicators or article 3 of the "
            "convention:\n- " + "\n- ".join(self.problems) + more
        )

    def metadata(self) -> dict:
        return {
            "file": self.file,
            "problems": self.n_problems,
            "cells_checked": self.cells_checked,
            "masked_cells_checked": self.masked_cells_checked,
            "parts_checked": self.parts_checked,
            "first_problems": self.problems[:50],
        }


def _has_source(text: str, names: list[str]) -> bool:
    text = " ".join(str(text).split())
    return bool(re.match(r"^Sources? : ", text)) and all(name in text for name in names)


def _expected_symbol(context: ReportContext, status: str) -> str:
    symbols = context.config.symbols
    return symbols.masked if status == "masked" else symbols.not_available


# ---- the workbook -------------------------------------------------------------------------------


def _compare_excel(report: GuardReport, context: ReportContext, where: str, value, expected,
                   in_period: bool) -> None:
    report.cells_checked += 1
    symbols = context.config.symbols
    if value is None or (isinstance(value, str) and not value.strip()):
        report.add(f"{where}: empty cell (would read as zero)")
        return
    if expected is None:
        # no row in published.indicators: "not available" within the indicator's years
        if in_period:
            if value != symbols.not_available:
                report.add(f"{where}: figure not in published.indicators must show «{symbols.not_available}»")
        elif value != symbols.out_of_period:
            report.add(f"{where}: year outside the indicator's years must show «{symbols.out_of_period}»")
        return
    status, published = expected
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if status == "published":
        if not is_number:
            report.add(f"{where}: published figure written as text, not as a number")
        elif not math.isclose(float(value), published, rel_tol=1e-12, abs_tol=1e-9):
            report.add(f"{where}: value differs from published.indicators")
        return
    report.masked_cells_checked += 1
    if is_number:
        report.add(f"{where}: {status} cell holds a number")
    elif _DIGIT.search(str(value)):
        report.add(f"{where}: {status} cell holds a number written as text")
    elif value != _expected_symbol(context, status):
        report.add(f"{where}: {status} cell does not show «{_expected_symbol(context, status)}»")


def _header_row(sheet: Sheet, first_label: str) -> int | None:
    for row in range(1, min(sheet.max_row, 40) + 1):
        if sheet.value(row, 1) == first_label:
            return row
    return None


def _year_columns(sheet: Sheet, header: int) -> dict[int, int]:
    return {
        column: int(value)
        for column, value in sorted(sheet.row(header).items())
        if isinstance(value, int) and not isinstance(value, bool)
    }


def _scan_sheet(report: GuardReport, sheet: Sheet, names_required: list[str], label: str) -> None:
    """Formulas, injectable texts, the source line."""
    has_source = False
    for row, column in sorted(sheet.values.keys() | sheet.formulas):
        value = sheet.values.get((row, column))
        if (row, column) in sheet.formulas or (isinstance(value, str) and value.startswith("=")):
            report.add(f"{label}!{coordinate(row, column)}: formula in the workbook")
        elif isinstance(value, str):
            if value.startswith(FORMULA_START):
                report.add(f"{label}!{coordinate(row, column)}: text starting with = + - @ not neutralised")
            if not has_source and _has_source(value, names_required):
                has_source = True
    if not has_source:
        report.add(f"{label}: no source line naming {', '.join(names_required)}")


def check_workbook(path: Path, context: ReportContext) -> GuardReport:
    report = GuardReport(file=Path(path).name)
    try:
        sheets = read_workbook(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a failed guard
        report.add(f"cannot be opened ({exc.__class__.__name__})")
        return report
    names = sheet_names(context)
    label_to_indicator = {names[i.id]: i for i in context.reported_indicators}
    # an IRIS sheet names an indicator of the IRIS only by its short name (no sheet of its own)
    iris_labels = {**label_to_indicator,
                   **{iris_row_label(context, i, names): i for i in context.iris_only_indicators()}}
    indicator_of_sheet = {names[i.id]: i for i in context.reported_indicators}
    rpe_of_sheet = {sheet: key[4:] for key, sheet in names.items() if key.startswith("rpe:")}
    commune_of_iris_sheet = {sheet: key[5:] for key, sheet in names.items() if key.startswith("iris:")}
    all_names = producers_required(context, context.reported_indicators)
    caf = [context.study.data_provider]
    present = {sheet.name for sheet in sheets}
    for _key, sheet in names.items():
        if sheet not in present:
            report.add(f"sheet «{sheet}» is missing")
    for sheet in sheets:
        report.parts_checked += 1
        indicator = indicator_of_sheet.get(sheet.name)
        is_rpe = sheet.name in rpe_of_sheet
        is_iris = sheet.name in commune_of_iris_sheet
        required = (producers_required(context, [indicator]) if indicator else all_names if is_rpe
                    else producers_required(context, context.iris_indicators()) if is_iris else caf)
        _scan_sheet(report, sheet, required, sheet.name)
        if sheet.name == names.get("cover"):
            texts = [v for v in sheet.values.values() if isinstance(v, str)]
            if not any(context.study.double_sign_off in t for t in texts):
                report.add(f"{sheet.name}: the double sign-off «{context.study.double_sign_off}» is missing")
            for symbol in (context.config.symbols.masked, context.config.symbols.not_available):
                if symbol not in texts:
                    report.add(f"{sheet.name}: the symbol «{symbol}» is not explained")
        if indicator is not None:
            _check_indicator_sheet(report, context, sheet, indicator)
        elif is_rpe:
            _check_rpe_sheet(report, context, sheet, rpe_of_sheet[sheet.name], label_to_indicator)
        elif is_iris:
            commune = commune_of_iris_sheet[sheet.name]
            published = context.published
            mine = published[(published["level"] == "iris") & (published["parent_code"] == commune)]
            _check_rpe_sheet(report, context, sheet, commune, iris_labels, mine)
    return report


def _check_indicator_sheet(report: GuardReport, context: ReportContext, sheet: Sheet, indicator: Indicator) -> None:
    header = _header_row(sheet, HEADER_CODE)
    if header is None:
        report.add(f"{sheet.name}: no header row «{HEADER_CODE}»")
        return
    if not sheet.frozen:
        report.add(f"{sheet.name}: header panes are not frozen")
    years = _year_columns(sheet, header)
    if sorted(years.values()) != sorted(indicator.years):
        report.add(f"{sheet.name}: year columns differ from the indicator's years")
    seen = set()
    for row, cells in sheet.rows(min_row=header + 1).items():
        code = cells.get(1)
        if code is None:
            continue
        code = str(code)
        for column, year in years.items():
            where = f"{sheet.name}!{coordinate(row, column)} ({indicator.id}, {code}, {year})"
            _compare_excel(report, context, where, cells.get(column), context.cell(indicator.id, code, year), True)
            seen.add((code, year))
    published = context.published
    expected = published[(published["indicator"] == indicator.id) & (published["level"] != "iris")]  # IRIS: own sheets
    for code, year in zip(expected["zone_code"], expected["year"]):
        if (code, int(year)) not in seen:
            report.add(f"{sheet.name}: figure of published.indicators missing ({indicator.id}, {code}, {year})")


def _check_rpe_sheet(report: GuardReport, context: ReportContext, sheet: Sheet, rpe_code: str,
                     label_to_indicator: dict[str, Indicator], expected=None) -> None:
    """A sheet of one RPE and its communes (or, given the `expected` rows, of a commune
    and its IRIS): every figure as published, none missing."""
    header = _header_row(sheet, HEADER_INDICATOR)
    if header is None:
        report.add(f"{sheet.name}: no header row «{HEADER_INDICATOR}»")
        return
    if not sheet.frozen:
        report.add(f"{sheet.name}: header panes are not frozen")
    columns = {value: column for column, value in sheet.row(header).items() if isinstance(value, str)}
    code_column = columns.get(HEADER_CODE)
    if code_column is None:
        report.add(f"{sheet.name}: no column «{HEADER_CODE}»")
        return
    years = _year_columns(sheet, header)
    seen = set()
    for row, cells in sheet.rows(min_row=header + 1).items():
        label, code = cells.get(1), cells.get(code_column)
        if label is None and code is None:
            continue
        indicator = label_to_indicator.get(label)
        if indicator is None:
            report.add(f"{sheet.name}!A{row}: unknown indicator")
            continue
        code = str(code)
        for column, year in years.items():
            where = f"{sheet.name}!{coordinate(row, column)} ({indicator.id}, {code}, {year})"
            _compare_excel(report, context, where, cells.get(column), context.cell(indicator.id, code, year),
                           year in indicator.all_years)
            seen.add((indicator.id, code, year))
    published = context.published
    mine = expected if expected is not None else published[
        (published["zone_code"] == rpe_code)
        | ((published["level"] == "commune") & (published["parent_code"] == rpe_code))
    ]
    for ind, code, year in zip(mine["indicator"], mine["zone_code"], mine["year"]):
        if (ind, code, int(year)) not in seen:
            report.add(f"{sheet.name}: figure of published.indicators missing ({ind}, {code}, {year})")


# ---- the HTML page -------------------------------------------------------------------------------

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []  # elements and texts, in order
        self.elements: list[Node] = []  # the elements among the children

    def iter(self, tag: str | None = None):
        """The descendants (with `tag`, if given) in document order; an explicit stack
        rather than nested generators, so a deep page costs the same per element."""
        stack = self.elements[::-1]
        while stack:
            node = stack.pop()
            if tag is None or node.tag == tag:
                yield node
            if node.elements:
                stack.extend(reversed(node.elements))

    def by_tag(self) -> dict[str, list[Node]]:
        """Every descendant grouped by tag, in document order: one pass for many look-ups."""
        out: dict[str, list[Node]] = {}
        for node in self.iter():
            out.setdefault(node.tag, []).append(node)
        return out

    def find_all(self, tag: str | None = None, **attrs) -> list[Node]:
        return [n for n in self.iter(tag) if all(n.attrs.get(k.rstrip("_").replace("_", "-")) == v
                                                   for k, v in attrs.items())]

    def has_class(self, name: str) -> bool:
        return name in (self.attrs.get("class") or "").split()

    def text(self) -> str:
        parts = []
        for child in self.children:
            parts.append(child if isinstance(child, str) else child.text())
        return "".join(parts)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: (v or "") for k, v in attrs}, self.current)
        self.current.children.append(node)
        self.current.elements.append(node)
        if tag not in _VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        node = Node(tag, {k: (v or "") for k, v in attrs}, self.current)
        self.current.children.append(node)
        self.current.elements.append(node)

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse_html(text: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)")


def _external_references(nodes: list[Node]) -> list[str]:
    found = []
    for node in nodes:
        if node.tag in ("script", "link", "iframe", "object", "embed", "base"):
            found.append(f"<{node.tag}> element")
        for attr in ("src", "href", "xlink:href", "srcset", "action", "poster", "data"):
            value = node.attrs.get(attr)
            if value and not value.startswith(("#", "data:")):
                found.append(f"<{node.tag} {attr}=…> pointing outside the file")
        style = node.attrs.get("style", "")
        if node.tag == "style":
            style += node.text()
        if "@import" in style:
            found.append(f"<{node.tag}> @import")
        for url in _URL.findall(style):
            if not url.startswith(("#", "data:")):
                found.append(f"<{node.tag}> url() pointing outside the file")
    return found


def _compare_html(report: GuardReport, context: ReportContext, indicator: Indicator, where: str, td: Node,
                  code: str, year: int, digits: int) -> None:
    report.cells_checked += 1
    expected = context.cell(indicator.id, code, year)
    status = td.attrs.get("data-statut")
    text = " ".join(td.text().split())
    if not text:
        report.add(f"{where}: empty cell (would read as zero)")
        return
    if expected is None:
        if year in indicator.all_years:
            if text != context.config.symbols.not_available or "data-valeur" in td.attrs:
                report.add(f"{where}: figure not in published.indicators must show its symbol")
        elif text != context.config.symbols.out_of_period:
            report.add(f"{where}: year outside the indicator's years must show its symbol")
        return
    if status != expected[0]:
        report.add(f"{where}: status differs from published.indicators")
    if expected[0] == "published":
        raw = td.attrs.get("data-valeur")
        try:
            exact = float(raw) if raw is not None else None
            shown = parse_number(text)
        except ValueError:
            report.add(f"{where}: published figure not shown as a number")
            return
        if exact is None or not math.isclose(exact, expected[1], rel_tol=1e-12, abs_tol=1e-9):
            report.add(f"{where}: value differs from published.indicators")
        if abs(shown - expected[1]) > 0.5 * 10 ** (-digits) + 1e-9:
            report.add(f"{where}: value shown differs from published.indicators")
        return
    report.masked_cells_checked += 1
    if "data-valeur" in td.attrs or _DIGIT.search(text):
        report.add(f"{where}: {expected[0]} cell holds a number")
    elif text != _expected_symbol(context, expected[0]):
        report.add(f"{where}: {expected[0]} cell does not show «{_expected_symbol(context, expected[0])}»")


def _check_table(report: GuardReport, context: ReportContext, indicator: Indicator, figure: Node,
                 tables: list[Node], expected_keys: set[tuple[str, int]]) -> None:
    tables = [t for t in tables if t.has_class("donnees")]
    label = f"{indicator.id}/{figure.attrs.get('data-graphique')}"
    if len(tables) != 1:
        report.add(f"{label}: expected one table of the chart's figures, found {len(tables)}")
        return
    digits = decimals(context, indicator)
    seen = set()
    for tr in tables[0].find_all("tr"):
        code = tr.attrs.get("data-code")
        if code is None:
            continue
        for td in tr.find_all("td"):
            if "data-annee" not in td.attrs:
                continue
            year = int(td.attrs["data-annee"])
            _compare_html(report, context, indicator, f"{label} ({code}, {year})", td, code, year, digits)
            seen.add((code, year))
    for code, year in sorted(expected_keys - seen):
        report.add(f"{label}: figure of published.indicators missing ({code}, {year})")


def check_html(path: Path, context: ReportContext, maps_expected: bool) -> GuardReport:
    report = GuardReport(file=Path(path).name)
    try:
        root = parse_html(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        report.add(f"cannot be read ({exc.__class__.__name__})")
        return report
    nodes = list(root.iter())  # the whole page, walked once
    by_tag: dict[str, list[Node]] = {}
    for node in nodes:
        by_tag.setdefault(node.tag, []).append(node)
    for problem in _external_references(nodes):
        report.add(f"not self-contained: {problem}")
    if not any(m.attrs.get("http-equiv", "").lower() == "content-security-policy" for m in by_tag.get("meta", [])):
        report.add("no Content-Security-Policy forbidding network access")
    page = " ".join(root.text().split())
    caf = context.study.data_provider
    if context.study.double_sign_off not in page:
        report.add(f"the double sign-off «{context.study.double_sign_off}» is missing")
    if not any(_has_source(n.text(), [caf]) for n in nodes if n.tag in ("p", "footer", "td")):
        report.add(f"the page has no source line naming {caf}")
    for symbol in (context.config.symbols.masked, context.config.symbols.not_available):
        if not any(" ".join(n.text().split()) == symbol for n in by_tag.get("span", []) if n.has_class("symbole")):
            report.add(f"the symbol «{symbol}» is not explained")
    published = context.published
    by_indicator: dict[str, list[Node]] = {}
    for section in by_tag.get("section", []):
        by_indicator.setdefault(section.attrs.get("data-indicateur"), []).append(section)
    for indicator in [*context.reported_indicators, *context.iris_only_indicators()]:
        sections = by_indicator.get(indicator.id, [])
        if len(sections) != 1:
            report.add(f"{indicator.id}: expected one section, found {len(sections)}")
            continue
        required = producers_required(context, [indicator])
        figures = {f.attrs.get("data-graphique"): f for f in sections[0].find_all("figure")}
        last_year = context.last_year(indicator)
        mine = published[published["indicator"] == indicator.id]
        upper = mine[mine["level"].isin(["epci", "rpe"])]
        communes = mine[(mine["level"] == "commune") & (mine["year"] == last_year)]
        expected = {
            "tendance": {(c, int(y)) for c, y in zip(upper["zone_code"], upper["year"])},
            "communes": {(c, int(y)) for c, y in zip(communes["zone_code"], communes["year"])},
            "carte": None,
        } if indicator.communal else {}  # an indicator of the IRIS only: its IRIS parts alone
        iris = mine[mine["level"] == "iris"]
        for commune in context.communes_with_iris():
            of_commune = iris[iris["parent_code"] == commune.code]
            if len(of_commune):  # the commune and its IRIS over the years: every IRIS figure
                expected[f"iris-{commune.code}"] = {(c, int(y)) for c, y in zip(of_commune["zone_code"],
                                                                               of_commune["year"])}
        for kind, keys in expected.items():
            figure = figures.get(kind)
            label = f"{indicator.id}/{kind}"
            if figure is None:
                report.add(f"{label}: chart missing")
                continue
            report.parts_checked += 1
            parts = figure.by_tag()
            sources = [p for p in parts.get("p", []) if p.has_class("source")]
            if not any(_has_source(p.text(), required) for p in sources):
                report.add(f"{label}: no source line naming {', '.join(required)}")
            svgs = parts.get("svg", [])
            if kind == "carte" and not maps_expected:
                if not any(p.has_class("note-carte") for p in parts.get("p", [])):
                    report.add(f"{label}: neither a map nor a note saying why")
            elif len(svgs) != 1:
                report.add(f"{label}: chart image missing")
            else:
                texts = [" ".join(t.text().split()) for t in svgs[0].find_all("text")]
                if not any(_has_source(t, required) for t in texts):
                    report.add(f"{label}: the chart image has no source line naming {', '.join(required)}")
            if keys is not None:
                _check_table(report, context, indicator, figure, parts.get("table", []), keys)
    return report
