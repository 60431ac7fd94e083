"""Extraction: from a file of `raw/` to a faithful text copy of one table.

What belongs here: opening Excel (python-calamine) and CSV files, recognising files
that are not what their name says, finding the sheet and the header row that the
catalog declares, cutting the table off the title block above and the notes below,
and fingerprinting files. Every cell is kept, as text, with its source row number:
nothing is interpreted yet. Turning text into numbers, codes and secrecy flags is
`pipeline.staging`'s job; checking values is `pipeline.validation`'s.

Files are only ever read: ingest never writes to `raw/`.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import python_calamine

from pipeline.catalog import Catalog, CatalogError, Vintage
from pipeline.errors import PipelineError

HEADER_SEARCH_ROWS = 30
ROW_COLUMN, FILE_COLUMN, SHEET_COLUMN = "_row", "_file", "_sheet"


class IngestError(PipelineError, ValueError):
    """A problem with an input file, worded for the data engineer.

    The message names the file (and sheet, row, column where it helps) and the
    problem; it never quotes a data value, since cells may be confidential.
    """

    def __init__(self, file: str | Path, problem: str, details: list[str] | None = None):
        self.file = Path(file).name
        self.problem = problem
        self.details = details or []
        lines = [f"{self.file}: {problem}"] + [f"  - {d}" for d in self.details]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class FileFingerprint:
    name: str
    path: str
    size: int
    sha256: str
    received_at: dt.datetime  # last modification time: when the file was dropped in raw/


def fingerprint(path: Path) -> FileFingerprint:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    stat = path.stat()
    return FileFingerprint(
        name=path.name,
        path=str(path),
        size=stat.st_size,
        sha256=digest.hexdigest(),
        received_at=dt.datetime.fromtimestamp(stat.st_mtime, tz=dt.timezone.utc),
    )


@dataclass
class RawTable:
    """One table cut out of a file: every column as text, plus where it came from."""

    frame: pd.DataFrame  # source labels as columns, plus _row, _file, _sheet
    file: str
    sheet: str | None
    header_row: int
    label_of: dict[str, str]  # canonical name -> label as found in the file
    warnings: list[str] = field(default_factory=list)
    notes_rows: int = 0
    other_period_rows: int = 0  # long files: rows of other years, left out of this year's copy

    @property
    def where(self) -> str:
        return f"{self.file}, sheet {self.sheet!r}" if self.sheet else self.file

    @property
    def extra_columns(self) -> list[str]:
        mapped = set(self.label_of.values())
        return [c for c in self.frame.columns if c not in mapped and not c.startswith("_")]


# -- reading cells ---------------------------------------------------------------------

def _sniff(path: Path) -> str:
    """What the file really is, from its first bytes: xlsx, xls, pdf, text or empty."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if not head:
        return "empty"
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "xls"
    if head.startswith(b"%PDF"):
        return "pdf"
    return "text"


def _cell_text(value: object) -> str | None:
    """Render a cell as the text a person reads in it (62023.0 -> '62023')."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    text = str(value)
    return text if text.strip() else None


def sheet_names(path: Path) -> list[str]:
    kind = _sniff(path)
    if kind not in ("xlsx", "xls"):
        return []
    if kind == "xlsx":
        _refuse_unsafe_workbook(path)
    try:
        return list(python_calamine.CalamineWorkbook.from_path(str(path)).sheet_names)
    except Exception as exc:  # calamine raises several unrelated types for broken files
        raise IngestError(path, f"the workbook cannot be read ({type(exc).__name__})") from None


_GRID_CACHE: dict[tuple, list[list[str | None]]] = {}


def read_grid(path: Path, sheet: str | None, encoding: str | None = None) -> list[list[str | None]]:
    """All cells of a sheet (or CSV file) as text, row 1 first.

    The last grid read is kept (keyed by path, size, modification time, sheet and
    encoding): a national file holding several years is read once per run, not per year.
    """
    path = Path(path)
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, sheet, encoding)
    except OSError:
        key = None
    if key is not None and key in _GRID_CACHE:
        return _GRID_CACHE[key]
    grid = _read_grid(path, sheet, encoding)
    if key is not None:
        _GRID_CACHE.clear()
        _GRID_CACHE[key] = grid
    return grid


def _read_grid(path: Path, sheet: str | None, encoding: str | None) -> list[list[str | None]]:
    if not path.exists():
        raise IngestError(path, "the file does not exist")
    kind = _sniff(path)
    suffix = path.suffix.lower()
    if kind == "empty":
        raise IngestError(path, "the file is empty (0 bytes)")
    if suffix in (".xlsx", ".xlsm", ".xls"):
        if kind == "pdf":
            raise IngestError(path, "the file is named like a workbook but is a PDF document")
        if kind == "text":
            raise IngestError(
                path, "the file is named like a workbook but holds plain text (a CSV export?); "
                "rename it to .csv if it is one and declare it in config/catalog.yaml"
            )
        return _read_workbook(path, sheet)
    if suffix in (".csv", ".txt"):
        if kind != "text":
            raise IngestError(path, f"the file is named .csv but is a {kind.upper()} file")
        return _read_csv(path, encoding)
    raise IngestError(path, f"unsupported file type {suffix!r}: expected .xlsx or .csv")


MAX_UNCOMPRESSED_BYTES = 1 << 30  # 1 GiB: far above any real table, far below a zip bomb


def _refuse_unsafe_workbook(path: Path) -> None:
    """Refuse XML entity declarations (billion laughs, external entities) and zip bombs.

    An .xlsx is a zip of XML parts; a DOCTYPE can only sit in a part's prolog, so the
    first bytes of each part tell. openpyxl is protected by defusedxml; this guards the
    fast reader too.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if sum(m.file_size for m in members) > MAX_UNCOMPRESSED_BYTES:
                raise IngestError(path, "the workbook expands to more than 1 GiB: refused (zip bomb?)")
            for member in members:
                if member.filename.endswith((".xml", ".rels")):
                    with archive.open(member) as part:
                        prolog = part.read(2048)
                    if b"<!DOCTYPE" in prolog or b"<!ENTITY" in prolog:
                        raise IngestError(
                            path, f"the workbook part {member.filename} declares XML entities: refused (XML bomb?)"
                        )
    except zipfile.BadZipFile:
        raise IngestError(path, "the workbook is not a valid zip archive; is it damaged?") from None


def _read_workbook(path: Path, sheet: str | None) -> list[list[str | None]]:
    _refuse_unsafe_workbook(path)
    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
    except Exception as exc:
        raise IngestError(path, f"the workbook cannot be read ({type(exc).__name__}); is it damaged?") from None
    names = list(workbook.sheet_names)
    if sheet is None:
        sheet = names[0]
    if sheet not in names:
        raise IngestError(path, f"sheet {sheet!r} not found; the workbook has: {', '.join(map(repr, names))}")
    try:
        rows = workbook.get_sheet_by_name(sheet).to_python(skip_empty_area=False)
    except Exception as exc:
        raise IngestError(path, f"sheet {sheet!r} cannot be read ({type(exc).__name__})") from None
    return [[_cell_text(v) for v in row] for row in rows]


def _utf16(data: bytes) -> str | None:
    """The UTF-16 codec a text file is in (Excel's "Unicode text" export, some CAF extractions):
    its byte-order mark, or, without one, a NUL beside every ASCII character. None otherwise."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    head = data[:512]
    if len(head) >= 8 and head.count(0) * 3 >= len(head):  # one byte in three NUL: not 8-bit text
        if head[1::2].count(0) * 2 >= len(head[1::2]):
            return "utf-16-le"
        if head[0::2].count(0) * 2 >= len(head[0::2]):
            return "utf-16-be"
    return None


def _read_csv(path: Path, encoding: str | None) -> list[list[str | None]]:
    data = path.read_bytes()
    # UTF-16 is told apart by its bytes, whatever the catalog declares: read as 8-bit text it
    # would be one NUL in two ("binary data", as a user met it)
    utf16 = _utf16(data)
    candidates = [utf16] if utf16 else [encoding] if encoding else ["utf-8-sig", "cp1252"]
    for candidate in candidates:
        try:
            text = data.decode(candidate).removeprefix("\ufeff")
            break
        except UnicodeDecodeError:
            continue
    else:
        if utf16:
            raise IngestError(path, "the file looks like UTF-16 text but cannot be decoded as such; "
                              "save it again as CSV UTF-8")
        raise IngestError(path, f"the file is not encoded in {' or '.join(candidates)}")
    if "\x00" in text:
        raise IngestError(path, "the file holds binary data, not CSV text")
    first_line = text.split("\n", 1)[0]
    # semicolons (French Excel), commas, or tabs (Excel's "Unicode text" export)
    delimiter = max((";", ",", "\t"), key=lambda d: (first_line.count(d), d == ";"))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return [[cell if cell and not cell.isspace() else None for cell in row] for row in reader]


# -- cutting the table out -------------------------------------------------------------

def _norm(label: str | None) -> str:
    return re.sub(r"\s+", " ", (label or "").replace("\u00a0", " ").replace("\u202f", " ")).strip()


def _match_labels(header: list[str | None], wanted: list[str]) -> dict[str, int]:
    """Column index of each wanted label: exact match first, then ignoring case."""
    exact = {_norm(h): i for i, h in enumerate(header) if h is not None}
    folded = {_norm(h).casefold(): i for i, h in enumerate(header) if h is not None}
    found = {}
    for label in wanted:
        key = _norm(label)
        if key in exact:
            found[label] = exact[key]
        elif key.casefold() in folded:
            found[label] = folded[key.casefold()]
    return found


def _is_note_row(row: list[str | None]) -> bool:
    """A source note under the table: one long text in the first cell, nothing else."""
    filled = [c for c in row if c is not None]
    return len(filled) == 1 and row[0] is not None and len(row[0]) > 12 and " " in row[0]


def _looks_like_data(cells: list[str | None], code_index: int) -> bool:
    """A row with something in the zone code's column and at least one other cell: a table row,
    not a note (a note is one text in the first cell)."""
    code = cells[code_index] if code_index < len(cells) else None
    return bool(code and code.strip() and " " not in code.strip()) and sum(c is not None for c in cells) >= 2


def _what(vintage: Vintage, label: str) -> str:
    """What a column label holds, for messages: the measure's declared label and name."""
    canonical = vintage.columns.get(label)
    if canonical is None:
        return "a column of the layout"
    return f"{vintage.labels[canonical]}, {canonical}" if canonical in vintage.labels else canonical


def cut_table(grid: list[list[str | None]], vintage: Vintage, file: str, sheet: str | None) -> RawTable:
    """The table of `vintage` inside `grid`: header located, title block and notes removed."""
    where = f"sheet {sheet!r}: " if sheet else ""
    code_label = vintage.label_of["code_zone"]
    warnings: list[str] = []
    expected = vintage.header_row - 1
    header_index = None
    if expected < len(grid) and _match_labels(grid[expected], [code_label]):
        header_index = expected
    else:
        for i, row in enumerate(grid[:HEADER_SEARCH_ROWS]):
            if _match_labels(row, [code_label]):
                header_index = i
                warnings.append(
                    f"{where}header found on row {i + 1}, the catalog says row {vintage.header_row}"
                )
                break
    if header_index is None:
        raise IngestError(
            file,
            f"{where}no header row: the column {code_label!r} is not on row {vintage.header_row} "
            f"(as config/catalog.yaml says for {vintage.source} {vintage.year}) nor in the first "
            f"{HEADER_SEARCH_ROWS} rows; was the column renamed? Then declare the new label in the catalog",
        )
    header = grid[header_index]
    required = vintage.required_labels
    found = _match_labels(header, required)
    missing = [label for label in required if label not in found]
    if missing:
        present = ", ".join(repr(_norm(h)) for h in header if h)
        raise IngestError(
            file,
            f"{where}columns missing on header row {header_index + 1}: "
            + ", ".join(f"{lbl!r} ({_what(vintage, lbl)})" for lbl in missing)
            + f". Columns present: {present}. If the producer renamed a column, map the new label in "
            f"config/catalog.yaml; if this year lacks a measure, list it under the vintage's `absent`",
        )
    period_index = found.get(vintage.long.period) if vintage.long else None

    # Unique, non-empty column names for the faithful copy.
    names: list[str] = []
    for i, label in enumerate(header):
        name = _norm(label) or f"colonne_{i + 1}"
        while name in names:
            name += "_bis"
        names.append(name)
    width = len(names)

    body: list[list[str | None]] = []
    rows: list[int] = []
    notes = other_period = 0
    ended = False
    code_index = _match_labels(header, [code_label])[code_label]
    ended_at, after_end = 0, []  # rows that look like data below the table's end: left out, but said
    wanted_period = str(vintage.year)
    for offset, row in enumerate(grid[header_index + 1 :], start=header_index + 2):
        if period_index is not None and period_index < len(row) and row[period_index] is not None \
                and row[period_index].strip()[:4] != wanted_period:
            other_period += 1  # a long file: this year's copy holds this year's rows only
            continue
        cells = (list(row) + [None] * width)[:width]
        if ended:
            notes += any(c is not None for c in row)
            if _looks_like_data(cells, code_index):
                after_end.append(offset)
            continue
        if all(c is None for c in row):
            ended = bool(body)  # blank rows before the first data row are skipped
            ended_at = offset if ended else 0
            continue
        if _is_note_row(cells):
            ended, notes, ended_at = True, notes + 1, offset
            continue
        if any(c is not None for c in row[width:]):
            warnings.append(f"{where}row {offset} has cells beyond the header's last column (ignored)")
        body.append(cells)
        rows.append(offset)
    if after_end:
        span = f"{after_end[0]}" if len(after_end) == 1 else f"{after_end[0]} to {after_end[-1]}"
        warnings.append(
            f"{where}{len(after_end)} row(s) below the table's end (row {ended_at}: "
            f"{'a blank row' if not _is_note_row((list(grid[ended_at - 1]) + [None] * width)[:width]) else 'a note'})"
            f" hold a zone code and figures: rows {span} were left out; if they belong to the table, "
            "remove the blank row or the note above them"
        )
    if not body:
        period = f" for {vintage.year}" if period_index is not None else ""
        raise IngestError(file, f"{where}the table under the header (row {header_index + 1}) has no rows{period}")

    frame = pd.DataFrame(body, columns=names, dtype="string")
    frame[ROW_COLUMN] = rows
    frame[FILE_COLUMN] = file
    frame[SHEET_COLUMN] = sheet
    label_of = {vintage.columns[label]: names[idx] for label, idx in found.items() if label in vintage.columns}
    return RawTable(frame, file, sheet, header_index + 1, label_of, warnings, notes, other_period)


# -- finding a vintage's file in raw/ --------------------------------------------------

def locate(raw_dir: Path, vintage: Vintage, catalog: Catalog) -> tuple[Path, str | None]:
    """The file (and sheet) holding `vintage` in raw/: its own file, else a bundle workbook."""
    files = raw_files(raw_dir)
    for path in files:
        if vintage.matches_file(path.name):
            return path, vintage.sheet
    if vintage.bundle_sheet:
        for path in files:
            if catalog.is_bundle(path.name) and vintage.bundle_sheet in sheet_names(path):
                return path, vintage.bundle_sheet
    expected = repr(vintage.file) + (
        f" or a workbook holding a sheet {vintage.bundle_sheet!r}" if vintage.bundle_sheet else ""
    )
    raise IngestError(raw_dir, f"no file for {vintage.source} {vintage.year}: expected {expected}")


def raw_files(raw_dir: Path) -> list[Path]:
    """The data files of raw/: every file but hidden ones and the folder's README."""
    return sorted(
        p for p in Path(raw_dir).rglob("*")
        if p.is_file() and not p.name.startswith(".") and not p.name.lower().startswith("readme")
    )


def locate_year(raw_dir: Path, source_id: str, year: int, catalog: Catalog) -> tuple[Path, str | None, Vintage]:
    """The file (and sheet) holding a year of a source, trying each of its forms in the
    catalog's order; with the form found."""
    forms = catalog.forms(source_id, year)
    for vintage in forms:
        try:
            path, sheet = locate(raw_dir, vintage, catalog)
        except IngestError:
            continue
        return path, sheet, vintage
    expected = " or ".join(
        repr(v.file) + (f" or a workbook holding a sheet {v.bundle_sheet!r}" if v.bundle_sheet else "") for v in forms
    )
    raise IngestError(raw_dir, f"no file for {source_id} {year}: expected {expected}")


def present_years(raw_dir: Path, catalog: Catalog) -> dict[str, list[int]]:
    """For each source, the catalog years whose file (or bundle sheet) is in raw/."""
    found: dict[str, list[int]] = {}
    for source in catalog.sources.values():
        for year in source.years:
            try:
                locate_year(raw_dir, source.id, year, catalog)
            except IngestError:
                continue
            found.setdefault(source.id, []).append(year)
    return found


def extract(path: Path, vintage: Vintage, sheet: str | None = None) -> RawTable:
    """Read `vintage`'s table from `path` (its own file, or `sheet` of a bundle)."""
    sheet = sheet if sheet is not None else vintage.sheet
    grid = read_grid(path, sheet if path.suffix.lower() != ".csv" else None, vintage.encoding)
    return cut_table(grid, vintage, path.name, sheet if path.suffix.lower() != ".csv" else None)


def vintages_in_file(path: Path, catalog: Catalog) -> list[tuple[Vintage, str | None]]:
    """What `path` holds according to the catalog, as (vintage, sheet) pairs.

    Raises IngestError for a file the catalog does not know, or a known source with a
    year the catalog does not list.
    """
    name = path.name
    if catalog.is_bundle(name):
        present = set(sheet_names(path))
        found = [(v, v.bundle_sheet) for v in catalog.all_vintages if v.bundle_sheet in present]
        if not found:
            raise IngestError(path, "the workbook holds none of the sheets the catalog expects in a bundle")
        return found
    vintages = catalog.vintages_for_file(name)
    if vintages:
        return [(v, v.sheet) for v in vintages]
    source = catalog.source_of_file(name)
    if source is not None:
        known = ", ".join(sorted({v.file for v in source.all_vintages}))
        raise IngestError(
            path,
            f"looks like a {source.id} table but config/catalog.yaml has no vintage for this file "
            f"(files known: {known}); a new year needs a vintage entry in the catalog",
        )
    raise IngestError(
        path,
        "not a file config/catalog.yaml knows; the files it expects are: " + ", ".join(catalog.expected_files())
        + ". Rename the file to its published name, or declare it in the catalog",
    )


__all__ = [
    "CatalogError",
    "FileFingerprint",
    "IngestError",
    "RawTable",
    "cut_table",
    "extract",
    "fingerprint",
    "locate",
    "locate_year",
    "present_years",
    "raw_files",
    "read_grid",
    "sheet_names",
    "vintages_in_file",
]
