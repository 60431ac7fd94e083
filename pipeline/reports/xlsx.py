"""Reading a workbook back, for the guard (`pipeline.reports.guard`): the sheets in order,
every cell's value, which cells hold a formula, and whether the panes are frozen.

The file is read as a spreadsheet application reads it (the zip's XML parts: workbook,
relationships, shared strings, sheets), streaming each sheet once and keeping only the
values: no style, no object per cell. Building openpyxl's whole model of a 25,000-cell
workbook took most of the guard's time, twice per run (before the move into reports/, and
in the asset check). The XML goes through expat handlers; a part declaring a DTD or
entities is refused, as defusedxml does.

Values are typed as openpyxl types them: text, int or float (a number with a '.' or an
exponent is a float), bool; an error or a date shows as its text (e.g. '#DIV/0!'). A file
this reader cannot follow (a missing part, a cell without its reference) raises, and the
guard then fails the document.
"""

from __future__ import annotations

import posixpath
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from openpyxl.utils import get_column_letter

from pipeline.errors import PipelineError


class WorkbookError(PipelineError, ValueError):
    """The file is not a workbook this reader can read (not a zip, a part missing...)."""


@dataclass
class Sheet:
    name: str
    values: dict[tuple[int, int], object] = field(default_factory=dict)  # (row, column) -> value
    formulas: set[tuple[int, int]] = field(default_factory=set)  # cells holding a formula
    frozen: bool = False  # the sheet view has a frozen pane

    @property
    def max_row(self) -> int:
        return max((row for row, _ in self.values), default=0)

    def value(self, row: int, column: int):
        return self.values.get((row, column))

    def row(self, row: int) -> dict[int, object]:
        """The cells of a row that hold something: column -> value."""
        return {c: v for (r, c), v in self.values.items() if r == row}

    def rows(self, min_row: int = 1) -> dict[int, dict[int, object]]:
        """Row number -> {column: value}, for the rows from `min_row` that hold something, in order."""
        out: dict[int, dict[int, object]] = {}
        for (r, c), v in sorted(self.values.items()):
            if r >= min_row:
                out.setdefault(r, {})[c] = v
        return out


def coordinate(row: int, column: int) -> str:
    return f"{get_column_letter(column)}{row}"


def _local(tag: str) -> str:
    """A tag or attribute name without its namespace prefix ('x:c' -> 'c')."""
    return tag.rsplit(":", 1)[-1] if ":" in tag else tag


def _cell_position(ref: str) -> tuple[int, int]:
    letters = ref.rstrip("0123456789")
    column = 0
    for ch in letters.upper():
        column = column * 26 + ord(ch) - 64
    return int(ref[len(letters):]), column


def _number(text: str):
    return float(text) if any(ch in text for ch in ".eE") else int(text)


def _refuse(*_args) -> None:
    raise WorkbookError("the workbook's XML declares a DTD or entities")


def _parse(stream, start=None, end=None, text=None) -> None:
    """Stream an XML part through expat handlers (start(name, attrs), end(name), text(data));
    the handlers strip namespace prefixes themselves (`_local`). DTDs and entity
    declarations are refused (as defusedxml)."""
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    if start:
        parser.StartElementHandler = start
    if end:
        parser.EndElementHandler = end
    if text:
        parser.CharacterDataHandler = text
    try:
        parser.ParseFile(stream)
    except expat.ExpatError as exc:
        raise WorkbookError(f"malformed XML ({exc})") from None


def _part(archive: zipfile.ZipFile, name: str):
    try:
        return archive.open(name)
    except KeyError:
        raise WorkbookError(f"part {name} is missing") from None


def _relationships(archive: zipfile.ZipFile, base: str) -> dict[str, tuple[str, str]]:
    """Id -> (type, part name) of the relationships of `base` (e.g. xl/workbook.xml)."""
    folder, name = posixpath.split(base)
    rels = {}

    def start(tag, attrs):
        if _local(tag) == "Relationship":
            target = attrs.get("Target", "")
            if target.startswith("/"):  # absolute in the package
                target = target.lstrip("/")
            else:
                target = posixpath.normpath(posixpath.join(folder, target))
            rels[attrs.get("Id")] = (attrs.get("Type", ""), target)

    _parse(_part(archive, posixpath.join(folder, "_rels", name + ".rels")), start)
    return rels


def _shared_strings(archive: zipfile.ZipFile, part: str | None) -> list[str]:
    if part is None or part not in archive.namelist():
        return []
    strings: list[str] = []
    item: list[str] = []
    in_t = [False]
    phonetic = [False]

    def start(tag, attrs):
        tag = _local(tag)
        if tag == "si":
            item.clear()
        elif tag == "rPh":
            phonetic[0] = True
        elif tag == "t" and not phonetic[0]:
            in_t[0] = True

    def end(tag):
        tag = _local(tag)
        if tag == "si":
            strings.append("".join(item))
        elif tag == "rPh":
            phonetic[0] = False
        elif tag == "t":
            in_t[0] = False

    def text(data):
        if in_t[0]:
            item.append(data)

    _parse(archive.open(part), start, end, text)
    return strings


def _read_sheet(archive: zipfile.ZipFile, part: str, name: str, strings: list[str]) -> Sheet:
    sheet = Sheet(name)
    cell: dict = {}  # the cell being read: position, type, raw <v>, inline text
    capture: list[str] | None = None  # text of the <v> or inline <t> being read
    phonetic = False

    def start(tag, attrs):
        nonlocal capture, phonetic
        tag = _local(tag)
        if tag == "c":
            cell.clear()
            cell.update(position=_cell_position(attrs.get("r", "")), kind=attrs.get("t", "n"),
                        raw=None, inline=None)
        elif tag == "v" or (tag == "t" and cell.get("inline") is not None and not phonetic):
            capture = []
        elif tag == "is":
            cell["inline"] = []
        elif tag == "rPh":
            phonetic = True
        elif tag == "f":
            sheet.formulas.add(cell["position"])
        elif tag == "pane" and attrs.get("state") in ("frozen", "frozenSplit"):
            sheet.frozen = True

    def end(tag):
        nonlocal capture, phonetic
        tag = _local(tag)
        if tag == "v" and capture is not None:
            cell["raw"], capture = "".join(capture), None
        elif tag == "t" and capture is not None:
            cell["inline"].append("".join(capture))
            capture = None
        elif tag == "rPh":
            phonetic = False
        elif tag == "c":
            kind, raw, inline = cell["kind"], cell["raw"], cell["inline"]
            value = "".join(inline) if inline is not None else None
            if raw:  # an empty <v/> (e.g. a formula never calculated) holds nothing
                if kind == "s":
                    value = strings[int(raw)]
                elif kind in ("str", "e", "d"):
                    value = raw
                elif kind == "b":
                    value = raw.strip() == "1"
                elif kind == "n":
                    value = _number(raw)
            if value is not None:
                sheet.values[cell["position"]] = value

    def text(data):
        if capture is not None:
            capture.append(data)

    _parse(_part(archive, part), start, end, text)
    return sheet


def read_workbook(path: Path) -> list[Sheet]:
    """The sheets of the workbook at `path`, in the workbook's order."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise WorkbookError(f"not a workbook ({exc.__class__.__name__})") from None
    with archive:
        rels = _relationships(archive, "xl/workbook.xml")
        shared = next((target for kind, target in rels.values() if kind.endswith("/sharedStrings")), None)
        strings = _shared_strings(archive, shared)
        sheets = []

        def start(tag, attrs):
            if _local(tag) == "sheet":
                rel = next((v for k, v in attrs.items() if _local(k) == "id" and k != "sheetId"), None)
                kind, target = rels.get(rel, ("", ""))
                if kind.endswith("/worksheet"):
                    sheets.append((attrs.get("name"), target))

        _parse(_part(archive, "xl/workbook.xml"), start)
        return [_read_sheet(archive, target, name, strings) for name, target in sheets]
