"""The workbook for the committees: `reports/indicateurs_petite_enfance.xlsx` (openpyxl).

Sheets: a cover ("Présentation"), one sheet per indicator (zones in rows: the agglomeration,
then each RPE followed by its communes; years in columns), one sheet per RPE with all its
indicators, and "Méthodologie". Numbers are written as numbers (formatted, never text);
a masked or unavailable figure shows its symbol, never a blank. Every sheet carries its
source line. Every text goes through `neutralise` (no formula can be injected).

The ~25,000 cells of the zone rows take their style from `_Styles.zone_cell`: each
combination (level of the zone, kind of cell, number format, indent) is registered in the
workbook once, and the other cells get a copy of its style indices. Assigning style objects
cell by cell made openpyxl hash them every time (most of the writing time).
"""

from __future__ import annotations

import math
from copy import copy
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.worksheet.worksheet import Worksheet

from pipeline.indicators import Indicator
from pipeline.reports.context import ReportContext, Zone
from pipeline.reports.texts import (
    IRIS_SOURCE,
    KIND_NAMES,
    LEVEL_NAMES,
    aggregation_rules,
    all_sources_line,
    data_date_text,
    decimals,
    excel_number_format,
    format_date,
    formula_text,
    indicator_short_name,
    iris_row_label,
    iris_rule,
    neutralise,
    note_text,
    period_text,
    producer_text,
    secrecy_rules,
    sheet_names,
    short_legend,
    source_line,
    symbol_legend,
    usage_rules,
    year_span,
)

# Header labels the guard looks for.
HEADER_CODE = "Code"
HEADER_INDICATOR = "Indicateur"
HEADER_ROW = 6  # header row of the indicator and RPE sheets; figures start below it

_THIN = Side(style="thin", color="BFBFBF")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)


class _Styles:
    def __init__(self, context: ReportContext) -> None:
        header = str(context.config.colour("header", "#1f3b63")).lstrip("#")
        self.header_fill = PatternFill("solid", fgColor=header)
        self.header_font = Font(bold=True, color="FFFFFF")
        self.title_font = Font(bold=True, size=14, color=header)
        self.big_title_font = Font(bold=True, size=18, color=header)
        self.bold = Font(bold=True)
        self.source_font = Font(italic=True, size=9, color="404040")
        self.symbol_font = Font(italic=True, color="7F7F7F")
        self.epci_fill = PatternFill("solid", fgColor="D9E1F2")
        self.rpe_fill = PatternFill("solid", fgColor="EDF1F9")
        self.symbol_fill = PatternFill("solid", fgColor="F2F2F2")
        self.link_font = Font(color="0563C1", underline="single")
        self._zone_styles: dict[tuple, object] = {}

    def zone_cell(self, cell, level: str, kind: str, number_format: str | None = None, indent: int = 0) -> None:
        """Style a cell of a zone row: `kind` is "text", "number" or "symbol"; the agglomeration
        and RPE rows are bold and tinted, a symbol is grey italic on grey (one style per
        combination, registered once: see the module docstring)."""
        key = (level, kind, number_format, indent)
        registered = self._zone_styles.get(key)
        if registered is not None:
            cell._style = copy(registered)  # openpyxl's own way of copying a style between cells
            return
        if kind == "symbol":
            cell.font, cell.fill = self.symbol_font, self.symbol_fill
            cell.alignment = Alignment(horizontal="center")
        else:
            if level not in ("commune", "iris"):
                cell.font = self.bold
            if level in ("epci", "rpe"):
                cell.fill = self.epci_fill if level == "epci" else self.rpe_fill
            if kind == "number":
                cell.number_format = number_format
                cell.alignment = Alignment(horizontal="right")
            elif indent:
                cell.alignment = Alignment(indent=indent)
        cell.border = _BORDER
        self._zone_styles[key] = copy(cell._style)


def _text(ws: Worksheet, row: int, column: int, value: object, font: Font | None = None, **align):
    cell = ws.cell(row=row, column=column, value=neutralise(value))
    cell.data_type = "s"
    if font is not None:
        cell.font = font
    if align:
        cell.alignment = Alignment(**align)
    return cell


LINE_POINTS = 15.0  # one line of 11-point text, as Excel's default row


def _fit_rows(ws: Worksheet) -> None:
    """Give each row the height its wrapped texts need. Excel grows such rows when it opens the
    file; LibreOffice keeps the default height, and the lines of long cells overlapped the rows
    below them. The count of lines is an estimate from the column width (one character per unit
    of width, a little less for bold text), rounded up: a row too high costs nothing."""
    widths = {letter: dim.width for letter, dim in ws.column_dimensions.items() if dim.width}
    for row in ws.iter_rows():
        if row[0].row in ws.row_dimensions and ws.row_dimensions[row[0].row].height:
            continue  # set by the sheet itself
        needed = LINE_POINTS
        for cell in row:
            if not isinstance(cell.value, str) or not cell.value:
                continue
            size = float(cell.font.sz or 11) if cell.font else 11.0
            lines = 1
            if cell.alignment is not None and cell.alignment.wrap_text:
                per_line = max(1.0, widths.get(cell.column_letter, 8.43) * 11.0 / size * (0.9 if cell.font.b else 1.0))
                lines = sum(max(1, math.ceil(len(part) / per_line)) for part in cell.value.split("\n"))
            needed = max(needed, lines * LINE_POINTS * size / 11.0)
        if needed > LINE_POINTS:
            ws.row_dimensions[row[0].row].height = round(needed + 2, 1)


def _link(cell, sheet: str):
    """An internal link to the top of another sheet."""
    cell.hyperlink = Hyperlink(ref=cell.coordinate, location=f"'{sheet}'!A1", display=str(cell.value))
    return cell


def _print_setup(ws: Worksheet, context: ReportContext, source: str, title_rows: str | None = None) -> None:
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    if title_rows:
        ws.print_title_rows = title_rows
    # In a header/footer, & starts a code: double it.
    ws.oddFooter.left.text = neutralise(source).replace("&", "&&")
    ws.oddFooter.right.text = neutralise(context.study.double_sign_off).replace("&", "&&") + " – page &P / &N"


def _figure_cell(ws: Worksheet, row: int, column: int, context: ReportContext, indicator: Indicator,
                 zone: Zone, year: int, number_format: str, styles: _Styles) -> None:
    symbols = context.config.symbols
    cell_data = context.cell(indicator.id, zone.code, year) if year in indicator.all_years else None
    if cell_data is not None and cell_data[0] == "published":
        cell = ws.cell(row=row, column=column, value=float(cell_data[1]))
        styles.zone_cell(cell, zone.level, "number", number_format)
        return
    if cell_data is None:
        symbol = symbols.out_of_period if year not in indicator.all_years else symbols.not_available
    else:
        symbol = symbols.masked if cell_data[0] == "masked" else symbols.not_available
    styles.zone_cell(_text(ws, row, column, symbol), zone.level, "symbol")


def _zone_text(ws: Worksheet, row: int, column: int, value: object, zone: Zone, styles: _Styles,
               indent: int = 0):
    cell = _text(ws, row, column, value)
    styles.zone_cell(cell, zone.level, "text", indent=indent)
    return cell


def _header(ws: Worksheet, row: int, labels: list, styles: _Styles) -> None:
    for column, label in enumerate(labels, start=1):
        if isinstance(label, int):
            cell = ws.cell(row=row, column=column, value=label)
        else:
            cell = _text(ws, row, column, label)
        cell.font = styles.header_font
        cell.fill = styles.header_fill
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        cell.border = _BORDER


def _widths(ws: Worksheet, widths: dict[int, float]) -> None:
    for column, width in widths.items():
        ws.column_dimensions[get_column_letter(column)].width = width


def _legend_rows(ws: Worksheet, context: ReportContext, source: str, styles: _Styles) -> None:
    _text(ws, 3, 1, source, styles.source_font)
    _text(ws, 4, 1, short_legend(context), styles.source_font)


# ---- the sheets ---------------------------------------------------------------------------


def _cover(ws: Worksheet, context: ReportContext, names: dict[str, str], styles: _Styles) -> None:
    study, territory = context.study, context.territory
    _text(ws, 1, 1, study.double_sign_off, styles.title_font)
    _text(ws, 2, 1, study.title, styles.big_title_font)
    _text(ws, 3, 1, "Indicateurs petite enfance : agglomération, relais petite enfance (RPE) et communes",
          Font(size=12, italic=True))
    n_communes = sum(1 for z in context.zones() if z.level == "commune")
    facts = [
        ("Étude présentée sous le double sigle", study.double_sign_off),
        ("Fournisseur des données", study.data_provider),
        ("Partenaire", study.partner),
        ("Convention de cession de données", "signée le " + format_date(study.signed_on)
         + " (« diagnostic sur le métier d'assistant maternel »)"),
        ("Territoire", f"{territory.epci_name} (EPCI {territory.epci_code}) : "
                       f"{len(context.rpes())} RPE, {n_communes} communes"),
        ("Période couverte", f"{period_text(context)} (les années varient selon l'indicateur, voir ci-dessous)"),
        ("Version des données", f"{context.data_version} (empreinte des indicateurs publiés, étude "
                                f"{', '.join(context.study_ids) or study.study_id})"),
        ("Date des données", data_date_text(context)),
        ("Document produit le", format_date(context.generated_at, with_time=True)),
        ("Service responsable", study.responsible or ""),
        ("Destinataires", "Comités technique et stratégique Petite Enfance, groupe de travail inter-RPE. "
                          f"La {study.data_provider} est destinataire des documents finaux (article 3)."),
        ("Source", f"Source : {study.data_provider}"),
    ]
    row = 5
    for label, value in facts:
        _text(ws, row, 1, label, styles.bold, vertical="top")
        _text(ws, row, 2, value, wrap_text=True, vertical="top")
        row += 1
    row += 1
    _text(ws, row, 1, "Lecture des cellules", styles.title_font)
    row += 1
    for symbol, meaning in symbol_legend(context):
        _text(ws, row, 1, symbol, Font(bold=True, italic=True, color="7F7F7F"), horizontal="center")
        _text(ws, row, 2, meaning, wrap_text=True, vertical="top")
        row += 1
    _text(ws, row, 2, "Les nombres sont arrondis à l'affichage ; la valeur exacte est dans la cellule. "
                      "Les filtres des en-têtes permettent de choisir un RPE ou un niveau.", wrap_text=True)
    row += 2
    _text(ws, row, 1, "Contenu du classeur et sources par indicateur", styles.title_font)
    row += 1
    _header(ws, row, ["Feuille", "Indicateur", "Unité", "Producteur", "Source", "Années"], styles)
    row += 1
    for ind in context.reported_indicators:
        _link(_text(ws, row, 1, names[ind.id], styles.link_font), names[ind.id])
        _text(ws, row, 2, ind.label, wrap_text=True, vertical="top")
        _text(ws, row, 3, ind.unit)
        _text(ws, row, 4, producer_text(context, ind))
        _text(ws, row, 5, source_line(context, ind), styles.source_font)
        _text(ws, row, 6, period_text(context, [ind]), wrap_text=True, vertical="top")
        row += 1
    for zone in context.rpes():
        _link(_text(ws, row, 1, names[f"rpe:{zone.code}"], styles.link_font), names[f"rpe:{zone.code}"])
        _text(ws, row, 2, f"Tous les indicateurs du {zone.name} et de ses communes", wrap_text=True)
        row += 1
    for zone in context.communes_with_iris():
        _link(_text(ws, row, 1, names[f"iris:{zone.code}"], styles.link_font), names[f"iris:{zone.code}"])
        _text(ws, row, 2, f"{zone.name} par IRIS (quartiers) : les indicateurs publiés à l'IRIS", wrap_text=True)
        row += 1
    _link(_text(ws, row, 1, names["method"], styles.link_font), names["method"])
    _text(ws, row, 2, "Définitions, formules de calcul, règles du secret statistique (article 4)")
    ws.auto_filter.ref = None
    _widths(ws, {1: 34, 2: 90, 3: 22, 4: 30, 5: 46, 6: 14})
    _fit_rows(ws)
    ws.freeze_panes = None
    ws.sheet_view.showGridLines = False
    _print_setup(ws, context, f"Source : {study.data_provider}")


def _indicator_sheet(ws: Worksheet, context: ReportContext, indicator: Indicator, styles: _Styles) -> None:
    years = list(indicator.years)
    fmt = excel_number_format(decimals(context, indicator))
    source = source_line(context, indicator)
    _text(ws, 1, 1, indicator.label, styles.title_font)
    missing = context.missing_text([indicator])
    _text(ws, 2, 1, f"Unité : {indicator.unit} – {KIND_NAMES[indicator.kind]} – années "
                    f"{year_span(context.indicator_years(indicator))}"
                    + (f" – sans données pour {missing} : fichiers non reçus, cellules « "
                       f"{context.config.symbols.not_available} »" if missing else ""))
    _legend_rows(ws, context, source, styles)
    note = note_text(context, indicator)
    if note:
        _text(ws, 5, 1, "Note : " + note, Font(size=9))
    labels = [HEADER_CODE, "Zone", "Niveau", "RPE", *years]
    _header(ws, HEADER_ROW, labels, styles)
    row = HEADER_ROW + 1
    for zone in context.zones():
        _zone_text(ws, row, 1, zone.code, zone, styles)
        indent = 0 if zone.level == "epci" else 1 if zone.level == "rpe" else 3
        _zone_text(ws, row, 2, zone.name, zone, styles, indent=indent)
        _zone_text(ws, row, 3, LEVEL_NAMES.get(zone.level, zone.level), zone, styles)
        _zone_text(ws, row, 4, context.rpe_name(zone.rpe_code) if zone.level != "epci" else "", zone, styles)
        for offset, year in enumerate(years):
            _figure_cell(ws, row, 5 + offset, context, indicator, zone, year, fmt, styles)
        row += 1
    last_column = get_column_letter(4 + len(years))
    ws.auto_filter.ref = f"A{HEADER_ROW}:{last_column}{row - 1}"
    ws.freeze_panes = f"C{HEADER_ROW + 1}"
    _widths(ws, {1: 11, 2: 36, 3: 14, 4: 30, **{5 + i: 12 for i in range(len(years))}})
    _print_setup(ws, context, source, f"{HEADER_ROW}:{HEADER_ROW}")


def _rpe_sheet(ws: Worksheet, context: ReportContext, rpe: Zone, names: dict[str, str], styles: _Styles) -> None:
    indicators = context.reported_indicators
    years = context.declared_years  # every figure of published.indicators, « nd » ones included
    communes = context.communes_of(rpe.code)
    source = all_sources_line(context, indicators)
    _text(ws, 1, 1, f"{rpe.name} : tous les indicateurs", styles.title_font)
    _text(ws, 2, 1, f"{len(communes)} communes – {context.territory.epci_name}. "
                    "Filtrer la colonne « Indicateur » pour n'en voir qu'un.")
    _legend_rows(ws, context, source, styles)
    labels = [HEADER_INDICATOR, "Unité", HEADER_CODE, "Zone", "Niveau", *years]
    _header(ws, HEADER_ROW, labels, styles)
    row = HEADER_ROW + 1
    for ind in indicators:
        fmt = excel_number_format(decimals(context, ind))
        for zone in [rpe, *communes]:
            _link(_zone_text(ws, row, 1, names[ind.id], zone, styles), names[ind.id])
            _zone_text(ws, row, 2, ind.unit, zone, styles)
            _zone_text(ws, row, 3, zone.code, zone, styles)
            _zone_text(ws, row, 4, zone.name, zone, styles, indent=0 if zone.level == "rpe" else 2)
            _zone_text(ws, row, 5, LEVEL_NAMES.get(zone.level, zone.level), zone, styles)
            for offset, year in enumerate(years):
                _figure_cell(ws, row, 6 + offset, context, ind, zone, year, fmt, styles)
            row += 1
    last_column = get_column_letter(5 + len(years))
    ws.auto_filter.ref = f"A{HEADER_ROW}:{last_column}{row - 1}"
    ws.freeze_panes = f"E{HEADER_ROW + 1}"
    _widths(ws, {1: 32, 2: 16, 3: 11, 4: 30, 5: 12, **{6 + i: 12 for i in range(len(years))}})
    _print_setup(ws, context, source, f"{HEADER_ROW}:{HEADER_ROW}")


def _iris_sheet(ws: Worksheet, context: ReportContext, commune: Zone, names: dict[str, str], styles: _Styles) -> None:
    """A commune cut into IRIS: the commune and each IRIS, per indicator published at the
    IRIS, over the years of the IRIS figures."""
    indicators = context.iris_indicators()
    years = sorted({y for ind in indicators for y in context.iris_years(ind)})
    iris = context.iris_of(commune.code)
    source = f"{all_sources_line(context, indicators)} ; {IRIS_SOURCE}"
    _text(ws, 1, 1, f"{commune.name} par IRIS", styles.title_font)
    _text(ws, 2, 1, f"{len(iris)} IRIS – {context.rpe_name(commune.rpe_code)}. {iris_rule(context)}")
    _legend_rows(ws, context, source, styles)
    labels = [HEADER_INDICATOR, "Unité", HEADER_CODE, "Zone", "Niveau", *years]
    _header(ws, HEADER_ROW, labels, styles)
    row = HEADER_ROW + 1
    for ind in indicators:
        fmt = excel_number_format(decimals(context, ind))
        for zone in [commune, *iris]:
            cell = _zone_text(ws, row, 1, iris_row_label(context, ind, names), zone, styles)
            if ind.id in names:  # an indicator of the IRIS only has no sheet to link to
                _link(cell, names[ind.id])
            _zone_text(ws, row, 2, ind.unit, zone, styles)
            _zone_text(ws, row, 3, zone.code, zone, styles)
            _zone_text(ws, row, 4, zone.name, zone, styles, indent=0 if zone.level == "commune" else 2)
            _zone_text(ws, row, 5, LEVEL_NAMES.get(zone.level, zone.level), zone, styles)
            for offset, year in enumerate(years):
                _figure_cell(ws, row, 6 + offset, context, ind, zone, year, fmt, styles)
            row += 1
    last_column = get_column_letter(5 + len(years))
    ws.auto_filter.ref = f"A{HEADER_ROW}:{last_column}{row - 1}"
    ws.freeze_panes = f"E{HEADER_ROW + 1}"
    _widths(ws, {1: 32, 2: 16, 3: 11, 4: 30, 5: 12, **{6 + i: 12 for i in range(len(years))}})
    _print_setup(ws, context, source, f"{HEADER_ROW}:{HEADER_ROW}")


def _method_sheet(ws: Worksheet, context: ReportContext, names: dict[str, str], styles: _Styles) -> None:
    _text(ws, 1, 1, "Méthodologie", styles.title_font)
    _text(ws, 2, 1, all_sources_line(context), styles.source_font)
    row = 4
    _text(ws, row, 1, "Les indicateurs", styles.title_font)
    row += 1
    header_row = row
    _header(ws, row, ["Indicateur", "Feuille", "Unité", "Nature", "Mode de calcul", "Producteur",
                      "Années", "Remarque"], styles)
    row += 1
    for ind in [*context.reported_indicators, *context.iris_only_indicators()]:
        sheet = names.get(ind.id, "feuilles IRIS")  # an indicator of the IRIS only: in the IRIS sheets
        values = [ind.label, sheet, ind.unit, KIND_NAMES[ind.kind], formula_text(context, ind),
                  producer_text(context, ind), year_span(ind.all_years), note_text(context, ind)]
        for column, value in enumerate(values, start=1):
            cell = _text(ws, row, column, value, wrap_text=True, vertical="top")
            cell.border = _BORDER
        row += 1
    ws.auto_filter.ref = f"A{header_row}:H{row - 1}"
    sections = [
        ("Échelons géographiques et calculs", aggregation_rules(context)),
        ("Le secret statistique (article 4 de la convention)", secrecy_rules(context)),
        ("Lecture des symboles", [f"« {s} » : {m}" for s, m in symbol_legend(context)]),
        ("Usage et diffusion (articles 2 et 3 de la convention)", usage_rules(context)),
    ]
    for title, lines in sections:
        row += 1
        _text(ws, row, 1, title, styles.title_font)
        row += 1
        for line in lines:
            ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=8)
            _text(ws, row, 1, "• " + line, wrap_text=True, vertical="top")
            ws.row_dimensions[row].height = 15 * (1 + len(line) // 150)
            row += 1
    _widths(ws, {1: 44, 2: 26, 3: 20, 4: 10, 5: 60, 6: 30, 7: 12, 8: 50})
    _fit_rows(ws)
    ws.freeze_panes = f"B{header_row + 1}"
    _print_setup(ws, context, all_sources_line(context))


def write_workbook(context: ReportContext, path: Path) -> dict:
    """Write the workbook to `path`; return counts (sheets, figures, masked cells)."""
    styles = _Styles(context)
    names = sheet_names(context)
    workbook = Workbook()
    cover = workbook.active
    cover.title = names["cover"]
    _cover(cover, context, names, styles)
    for ind in context.reported_indicators:
        _indicator_sheet(workbook.create_sheet(names[ind.id]), context, ind, styles)
    for rpe in context.rpes():
        _rpe_sheet(workbook.create_sheet(names[f"rpe:{rpe.code}"]), context, rpe, names, styles)
    for commune in context.communes_with_iris():
        _iris_sheet(workbook.create_sheet(names[f"iris:{commune.code}"]), context, commune, names, styles)
    _method_sheet(workbook.create_sheet(names["method"]), context, names, styles)
    workbook.properties.title = f"{context.study.title} – indicateurs petite enfance"
    workbook.properties.creator = context.study.double_sign_off
    workbook.properties.subject = f"Source : {context.study.data_provider}"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
    counts = context.published["status"].value_counts()
    return {
        "sheets": len(workbook.sheetnames),
        "indicator_sheets": len(context.reported_indicators),
        "rpe_sheets": len(context.rpes()),
        "iris_sheets": len(context.communes_with_iris()),
        "figures_published": int(counts.get("published", 0)),
        "figures_masked": int(counts.get("masked", 0)),
        "figures_not_available": int(counts.get("not_available", 0)),
    }


__all__ = ["HEADER_CODE", "HEADER_INDICATOR", "HEADER_ROW", "indicator_short_name", "write_workbook"]
