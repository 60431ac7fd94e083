"""Bad input as a new user would make it: every case gives a message naming the file and
the problem, never a traceback; raw/ is left untouched and the last good tables stay."""

from __future__ import annotations

import shutil

import pytest

from pipeline.__main__ import main
from pipeline.catalog import load_catalog
from tests.helpers import edit_workbook, failure_message, find_row, header_columns, materialize, query, tree_digest

BCA = load_catalog().vintage("bca", 2017)


def validate_cli(capsys, *paths) -> tuple[int, str]:
    code = main(["validate", *map(str, paths)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_sample_files_are_valid(capsys, sample_dir):
    code, output = validate_cli(capsys, *sorted(sample_dir.iterdir()))
    assert code == 0, output
    assert "Traceback" not in output


@pytest.fixture
def bca_2017(sample_project):
    return sample_project / "raw" / BCA.file


def _cell(ws, code: str, label: str):
    return ws.cell(row=find_row(ws, code), column=header_columns(ws, BCA.header_row)[label])


CASES = {
    "empty file": (lambda p: p.write_bytes(b""), "the file is empty"),
    "csv named xlsx": (
        lambda p: p.write_text("Codes_Insee;Communes\n62023;Allouagne\n", encoding="utf-8"),
        "named like a workbook but holds plain text",
    ),
    "pdf named xlsx": (lambda p: p.write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"), "is a PDF document"),
    "missing sheet": (
        lambda p: edit_workbook(p, BCA.sheet, lambda ws: setattr(ws, "title", "Feuil1")),
        f"sheet '{BCA.sheet}' not found; the workbook has: 'Feuil1'",
    ),
    "renamed key column": (
        lambda p: edit_workbook(p, BCA.sheet, lambda ws: setattr(ws.cell(BCA.header_row, 1), "value", "INSEE")),
        "no header row: the column 'Codes_Insee' is not on row 6",
    ),
    "renamed measure column": (
        lambda p: edit_workbook(
            p, BCA.sheet,
            lambda ws: setattr(ws.cell(BCA.header_row, header_columns(ws, BCA.header_row)["NB_Allocataires"]),
                               "value", "NB_ALLOC"),
        ),
        "columns missing on header row 6: 'NB_Allocataires' (Nombre d'allocataires (décembre), allocataires)",
    ),
    "text in a number column": (
        lambda p: edit_workbook(p, BCA.sheet,
                                lambda ws: setattr(_cell(ws, "62119", "NB_Allocataires"), "value", "beaucoup")),
        "column 'NB_Allocataires': must be a number or a secrecy marker, broken on 1 row",
    ),
    "duplicated commune": (
        lambda p: edit_workbook(p, BCA.sheet, lambda ws: setattr(ws.cell(find_row(ws, "62028"), 1), "value", "62023")),
        "one row per zone and year (zone code appears more than once), broken on 2 rows",
    ),
    "unknown commune": (
        lambda p: edit_workbook(p, BCA.sheet, lambda ws: setattr(ws.cell(find_row(ws, "62028"), 1), "value", "62999")),
        "unknown codes: 62999; a former commune code needs a line in config/commune_changes.csv",
    ),
    "negative count": (
        lambda p: edit_workbook(p, BCA.sheet, lambda ws: setattr(_cell(ws, "62119", "NB_Allocataires"), "value", -12)),
        "column 'NB_Allocataires': must be ≥ 0, broken on 1 row",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_is_reported_by_validate(case, bca_2017, capsys):
    spoil, expected = CASES[case]
    spoil(bca_2017)
    code, output = validate_cli(capsys, bca_2017)
    assert code == 1
    assert f"error: {BCA.file}: " in output
    assert expected in output
    assert "Traceback" not in output
    assert "beaucoup" not in output and "-12" not in output  # never a cell value


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_fails_the_run_and_keeps_the_last_good_tables(case, bca_2017, sample_project):
    good = materialize(["raw_bca", "stg_bca"], "2017")
    assert good.success
    tables_before = query(sample_project, "SELECT count(*), sum(value) FROM staging.bca")
    raw_before = query(sample_project, "SELECT count(*) FROM raw.bca_2017")

    spoil, expected = CASES[case]
    spoil(bca_2017)
    raw_files = tree_digest(sample_project / "raw")
    result = materialize(["raw_bca", "stg_bca"], "2017")
    assert not result.success
    message = failure_message(result)
    assert BCA.file in message and expected in message
    assert tree_digest(sample_project / "raw") == raw_files  # ingest never writes to raw/
    assert query(sample_project, "SELECT count(*), sum(value) FROM staging.bca") == tables_before
    if case in ("text in a number column", "duplicated commune", "unknown commune", "negative count"):
        return  # the file itself is readable: its faithful copy replaced the raw table
    assert query(sample_project, "SELECT count(*) FROM raw.bca_2017") == raw_before


def test_header_moved_down_is_read_with_a_warning(bca_2017, capsys):
    edit_workbook(bca_2017, BCA.sheet, lambda ws: ws.insert_rows(1, amount=2))
    code, output = validate_cli(capsys, bca_2017)
    assert code == 0, output
    assert f"header found on row {BCA.header_row + 2}, the catalog says row {BCA.header_row}" in output


def test_file_for_a_year_the_catalog_does_not_know(sample_project, capsys):
    new = sample_project / "raw" / "BCA2023.xlsx"
    shutil.copy(sample_project / "raw" / BCA.file, new)
    code, output = validate_cli(capsys, new)
    assert code == 1
    assert "BCA2023.xlsx: looks like a bca table but config/catalog.yaml has no vintage for this file" in output


def test_file_not_in_the_catalog(tmp_path, capsys):
    stray = tmp_path / "notes_reunion.xlsx"
    stray.write_bytes(b"PK\x03\x04")
    code, output = validate_cli(capsys, stray)
    assert code == 1 and "notes_reunion.xlsx: not a file config/catalog.yaml knows" in output
    # the message lists the names the catalog expects, so the user can rename the file
    assert "BCA2017.xlsx" in output and "DS_ETAT_CIVIL_NAIS_COMMUNES_data.csv" in output


def test_missing_raw_file_names_what_is_expected(project):
    result = materialize(["raw_bca"], "2017")
    assert not result.success
    assert ("no file for bca 2017: expected 'BCA2017.xlsx' or a workbook holding a sheet 'BCA2017'"
            in failure_message(result))


XML_BOMB_DTD = b"""<!DOCTYPE lolz [<!ENTITY lol "lol">\
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">]>"""


def test_xml_bomb_is_refused(bca_2017, capsys):
    """A workbook whose shared strings expand entities is refused, not expanded."""
    import zipfile

    bomb = bca_2017.with_name("bomb.xlsx")
    with zipfile.ZipFile(bca_2017) as src, zipfile.ZipFile(bomb, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                first_text = data.index(b"<t>") + 3
                data = XML_BOMB_DTD + data[:first_text] + b"&lol5;" + data[data.index(b"</t>", first_text):]
            dst.writestr(item, data)
    shutil.move(bomb, bca_2017)
    code, output = validate_cli(capsys, bca_2017)
    assert code == 1 and "Traceback" not in output
    assert f"{BCA.file}: the workbook part xl/worksheets/sheet1.xml declares XML entities: refused" in output

    import defusedxml  # openpyxl (used to write reports and samples) refuses such files when it is installed
    import openpyxl

    with pytest.raises(ValueError):  # openpyxl's "Unable to read workbook", from defusedxml's EntitiesForbidden
        openpyxl.load_workbook(bca_2017)
    assert defusedxml


@pytest.mark.parametrize("codec, tabs", [("utf-16", False), ("utf-16", True), ("utf-16-le", False)],
                         ids=["utf-16 with BOM", "Excel unicode text (tabs)", "utf-16-le without BOM"])
def test_a_utf16_csv_is_read_as_text(capsys, sample_project, codec, tabs):
    """Excel's "Unicode text" export (UTF-16, tab-separated) or a UTF-16 extraction used to fail
    with "the file holds binary data, not CSV text": it is read, with the same figures."""
    path = sample_project / "raw" / "base_scolarisation_2017.csv"
    text = path.read_bytes().decode("utf-8-sig")
    code, output = validate_cli(capsys, path)
    assert code == 0, output
    utf8_line = next(line for line in output.splitlines() if line.startswith("ok:"))
    path.write_bytes((text.replace(";", "\t") if tabs else text).encode(codec))
    code, output = validate_cli(capsys, path)
    assert code == 0 and "binary data" not in output, output
    assert next(line for line in output.splitlines() if line.startswith("ok:")) == utf8_line
    result = materialize(["raw_scolarisation", "stg_scolarisation"], "2017")
    assert result.success, failure_message(result)
    assert query(sample_project, "SELECT count(*) FROM staging.scolarisation WHERE year = 2017")[0][0] > 0


def test_a_file_of_nul_bytes_named_csv_is_still_refused(capsys, sample_project):
    path = sample_project / "raw" / "base_scolarisation_2017.csv"
    path.write_bytes(b"CODGEO;LIBGEO\n62023;\x00\x01\x02\x03binary\xff\x00\n" * 3)
    code, output = validate_cli(capsys, path)
    assert code == 1 and "binary data" in output


def test_rows_below_the_footnotes_are_not_dropped_silently(bca_2017, sample_project, capsys):
    """Rows pasted under the source note (a commune forgotten, then added at the bottom) were cut
    off with the note and nothing said so: a warning names the file, the sheet and the rows."""
    moved = {}

    def paste_below_the_note(ws):
        row = find_row(ws, "62119")
        moved["values"] = [c.value for c in ws[row]]
        ws.delete_rows(row)
        last = ws.max_row
        ws.cell(last + 2, 1, "Source : CAF du Pas-de-Calais, fichier allocataires (note ajoutée)")
        for column, value in enumerate(moved["values"], start=1):
            ws.cell(last + 4, column, value)
        moved["row"] = last + 4

    edit_workbook(bca_2017, BCA.sheet, paste_below_the_note)
    code, output = validate_cli(capsys, bca_2017)
    warning = next(line for line in output.splitlines() if "below the table's end" in line)
    assert warning.startswith(f"warning: {BCA.file}, sheet '{BCA.sheet}'")
    assert f"rows {moved['row']} were left out" in warning
    result = materialize(["raw_bca"], "2017")
    assert result.success
    (event,) = result.asset_materializations_for_node("raw_bca")
    assert any("below the table's end" in w for w in event.metadata["warnings"].value)
