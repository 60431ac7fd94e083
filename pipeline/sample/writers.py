"""The tables as the files lay them out (title block, header, rows, total rows, notes)
and their writers: workbooks (fixed timestamps and zip entries) and CSV files (encodings,
thousands separators, decimal commas)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.writer.excel import ExcelWriter

from pipeline.catalog import Source, Vintage
from pipeline.sample.model import (
    _blank_masks,
    _Sample,
    _zone_frame,
)
from pipeline.sample.quirks import (
    CSV_ENCODING,
    CSV_NAME_FALLBACK_LABEL,
    EXTRA_COLUMNS,
    FIXED_TIME,
    KEY_MEASURES,
    NOTES,
    NUMERIC_CODES,
    SECRET_CELL,
    SECRET_NOTES,
    SENTINEL_LABEL,
    YEAR_AS_DATE,
)
from pipeline.territory import Territory


@dataclass(frozen=True)
class _Table:
    title: list[str | None]  # exactly header_row - 1 lines
    header_row: int
    labels: list[str]
    rows: list[list[object]]
    notes: list[str]


def _python(value: object) -> object:
    """numpy scalar -> Python value; NaN -> None (an empty cell)."""
    if value is None:
        return None
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    return value


def _years_text(years: Sequence[int]) -> str:
    return str(years[0]) if len(years) == 1 else f"{min(years)}-{max(years)}"


def _scope(territory: Territory) -> str:
    if len(territory.epcis) == 1:
        return f"{territory.epci_name} ({territory.epci_short_name})"
    return f"{len(territory.epcis)} EPCI, {len(territory.communes)} communes"


def _title_block(source: Source, territory: Territory, years: Sequence[int], header_row: int) -> list[str | None]:
    notes = NOTES.get(source.id, {})
    lines: list[str | None] = [
        f"{source.title} - {_years_text(years)}",
        f"Champ : {_scope(territory)}" + (f", {notes['champ']}" if "champ" in notes else ""),
        f"Date d'extraction : 15/06/{max(years) + 1}",
    ]
    room = header_row - 1
    # Title, scope, date, then blank rows down to the header; short blocks drop the blank
    # first, then the last lines.
    return lines + [None] * (room - len(lines)) if room > len(lines) else lines[:room]


def _notes(source: Source, years: Sequence[int]) -> list[str]:
    notes = NOTES.get(source.id, {})
    lines = [notes.get("source", f"Source : {source.producer} - {source.title}").format(years=_years_text(years))]
    if "lecture" in notes:
        lines.append(notes["lecture"])
    if source.blank_means == "secret_at_source":
        lines.extend(SECRET_NOTES)
    return lines


def _build_table(s: _Sample, vintages: Sequence[Vintage], kind: str, sentinel: str | None) -> _Table:
    """One sheet or CSV file holding `vintages` (one, several years wide, or long by year)."""
    sources = {v.source for v in vintages}
    if len(sources) != 1:
        raise ValueError(f"one sheet holds several sources {sorted(sources)}: not supported by the sample")
    source = s.catalog.source(sources.pop())
    if len({v.header_row for v in vintages}) != 1:
        raise ValueError(f"{source.id}: vintages sharing a sheet have different header rows")
    long = {v.year_column is not None for v in vintages}
    if len(long) != 1:
        raise ValueError(f"{source.id}: a sheet mixes long-by-year and wide vintages")
    long_by_year = long.pop()
    sentinel_commune = s.territory.communes["code_commune"].iloc[0]

    labels: list[str] = []
    rows: dict[object, dict[str, object]] = {}  # row key -> label -> cell
    for v in sorted(vintages, key=lambda v: v.year):
        year = v.year
        key_labels = [lbl for lbl, c in v.columns.items() if c in KEY_MEASURES or lbl == v.year_column]
        measure_labels = [lbl for lbl in v.columns if lbl not in key_labels]
        extras = [(x.label.format(yy=f"{year % 100:02d}"), x.measure) for x in EXTRA_COLUMNS.get(source.id, ())
                  if year >= x.first_year]
        extras = [(lbl, m) for lbl, m in extras if lbl not in v.columns]
        if kind == "csv" and "nom_zone" not in v.columns.values():
            key_labels.append(CSV_NAME_FALLBACK_LABEL)
        measures = [v.columns[lbl] for lbl in measure_labels] + [m for _, m in extras]
        cell_labels = measure_labels + [lbl for lbl, _ in extras]
        for lbl in key_labels + cell_labels:
            if lbl not in labels:
                labels.append(lbl)
            elif lbl in cell_labels and not long_by_year:
                raise ValueError(f"{source.id}: column {lbl!r} holds two years in one sheet")

        frame = _zone_frame(s, source, year, measures)
        secret, missing = _blank_masks(s, source, year, frame, measures)
        blank_text = SECRET_CELL.get(source.id)
        # frame.values is what iterrows() reads, row by row: the same Python values
        column = {c: j for j, c in enumerate(frame.columns)}
        cells = [(lbl, column[m], secret[m].to_numpy(), missing[m].to_numpy()) for lbl, m in zip(cell_labels, measures)]
        for pos, zone in enumerate(frame.values):
            code = zone[column["code"]]
            row = rows.setdefault((year, code) if long_by_year else code, {})
            if source.id in NUMERIC_CODES and code.isdigit():
                code_cell: object = int(code)
            else:
                code_cell = code
            name = zone[column["name"]]
            if sentinel is not None and code == sentinel_commune:
                name = f"{name} {sentinel}"
                row[SENTINEL_LABEL] = sentinel
            for lbl in key_labels:
                canonical = v.columns.get(lbl, "nom_zone")
                if lbl == v.year_column:
                    row[lbl] = datetime(year, 12, 31) if source.id in YEAR_AS_DATE else year
                else:
                    row[lbl] = code_cell if canonical == "code_zone" else name
            for lbl, j, is_secret, is_missing in cells:
                if is_secret[pos]:
                    row[lbl] = blank_text
                elif is_missing[pos]:
                    row[lbl] = None
                else:
                    row[lbl] = _python(zone[j])
    if sentinel is not None:
        labels.append(SENTINEL_LABEL)
    years = sorted(v.year for v in vintages)
    header_row = vintages[0].header_row
    return _Table(
        title=_title_block(source, s.territory, years, header_row) if header_row > 1 else [],
        header_row=header_row,
        labels=labels,
        rows=[[row.get(lbl) for lbl in labels] for row in rows.values()],
        notes=_notes(source, years) if kind == "xlsx" else [],
    )


# ---------------------------------------------------------------------------------------
# Writers.
# ---------------------------------------------------------------------------------------


# Sheets with more rows than this are streamed (openpyxl write-only mode): the national
# sample's workbooks. Smaller ones, the CABBALR files among them, are written cell by cell
# as before (their bytes are pinned by the tests).
STREAM_ROWS = 5_000


def _write_workbook(path: Path, sheets: Sequence[tuple[str, _Table]]) -> None:
    if any(len(table.rows) > STREAM_ROWS for _, table in sheets):
        return _write_workbook_streamed(path, sheets)
    wb = Workbook()
    wb.remove(wb.active)
    for sheet_name, table in sheets:
        ws = wb.create_sheet(title=sheet_name)
        for r, line in enumerate(table.title, start=1):
            if line is not None:
                ws.cell(r, 1, line)
        for c, label in enumerate(table.labels, start=1):
            ws.cell(table.header_row, c, label)
        for r, row in enumerate(table.rows, start=table.header_row + 1):
            for c, value in enumerate(row, start=1):
                if value is None:
                    continue
                cell = ws.cell(r, c, value)
                if isinstance(value, datetime):
                    cell.number_format = "dd/mm/yyyy"
        # One blank row, then the notes, as in the CAF's Excel releases.
        first_note = table.header_row + len(table.rows) + 2
        for r, line in enumerate(table.notes, start=first_note):
            ws.cell(r, 1, line)
    wb.properties.creator = "Caf du Pas-de-Calais"
    wb.properties.lastModifiedBy = "Caf du Pas-de-Calais"
    wb.properties.created = FIXED_TIME
    wb.properties.modified = FIXED_TIME
    # openpyxl's save_workbook stamps the current time on the properties and zipfile on
    # every member: write through ExcelWriter, then re-zip with fixed member dates.
    buffer = io.BytesIO()
    ExcelWriter(wb, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED)).save()
    path.write_bytes(_fixed_zip(buffer.getvalue()))


def _write_workbook_streamed(path: Path, sheets: Sequence[tuple[str, _Table]]) -> None:
    """Same cells as `_write_workbook`, streamed row by row (constant memory, faster)."""
    wb = Workbook(write_only=True)
    for sheet_name, table in sheets:
        ws = wb.create_sheet(title=sheet_name)
        for line in table.title:
            ws.append([line])
        ws.append(table.labels)
        for row in table.rows:
            out: list[object] = []
            for value in row:
                if isinstance(value, datetime):
                    cell = WriteOnlyCell(ws, value)
                    cell.number_format = "dd/mm/yyyy"
                    value = cell
                out.append(value)
            ws.append(out)
        ws.append([])
        for line in table.notes:
            ws.append([line])
    wb.properties.creator = "Caf du Pas-de-Calais"
    wb.properties.lastModifiedBy = "Caf du Pas-de-Calais"
    wb.properties.created = FIXED_TIME
    wb.properties.modified = FIXED_TIME
    buffer = io.BytesIO()
    ExcelWriter(wb, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED)).save()
    path.write_bytes(_fixed_zip(buffer.getvalue()))


def _fixed_zip(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            member = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME.timetuple()[:6])
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o644 << 16
            dst.writestr(member, src.read(info.filename))
    return out.getvalue()


def _csv_field(value: object, thousands: str) -> str:
    """INSEE style: thousands separated by a narrow no-break space, decimal comma."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}".replace(",", thousands)
    if isinstance(value, float):
        return f"{value:,.1f}".replace(",", thousands).replace(".", ",")
    if isinstance(value, datetime):
        return value.strftime("%d/%m/%Y")
    text = str(value)
    if any(ch in text for ch in ';"\r\n'):
        text = '"' + text.replace('"', '""') + '"'
    return text


def _write_csv(path: Path, table: _Table, encoding: str) -> None:
    # Windows-1252 has no U+202F: such files use the no-break space U+00A0 instead.
    try:
        "\u202f".encode(encoding)
        thousands = "\u202f"
    except UnicodeEncodeError:
        thousands = "\u00a0"
    lines = [[line or ""] for line in table.title] + [table.labels] + table.rows
    text = "".join(";".join(_csv_field(v, thousands) for v in line) + "\r\n" for line in lines)
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise ValueError(f"{path.name}: text not encodable in {encoding} (the sentinel?): {exc}") from None
    path.write_bytes(data)


def _csv_encoding(vintages: Iterable[Vintage]) -> str:
    for v in vintages:
        if v.encoding:
            return v.encoding
    for v in vintages:
        for key in ((v.source, v.year), (v.source, None)):
            if key in CSV_ENCODING:
                return CSV_ENCODING[key]
    return "utf-8"


def _check_name(name: str) -> None:
    if any(ch in name for ch in "*?["):
        raise ValueError(f"catalog file {name!r} is a pattern: the sample needs a plain file name")
