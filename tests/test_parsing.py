"""Reading the quirks of the source files: numbers, codes, years, markers."""

import pandas as pd
import pytest

from pipeline.catalog import load_catalog
from pipeline.extract import IngestError, _cell_text, cut_table
from pipeline.staging import MISSING, REPORTED, SECRET, normalise_code, parse_number, parse_year, stage
from pipeline.territory import load_territory


@pytest.mark.parametrize(
    "text, expected",
    [("1\u202f214", 1214.0), ("1\u00a0214", 1214.0), ("1 214", 1214.0), ("12,4", 12.4), ("12.4", 12.4),
     ("0", 0.0), ("-3", -3.0), ("1e3", 1000.0)],
)
def test_parse_number_reads_french_numbers(text, expected):
    assert parse_number(text) == expected


@pytest.mark.parametrize("text", ["abc", "12a", "nan", "inf", "1,2,3", ""])
def test_parse_number_refuses_text(text):
    assert parse_number(text) is None


@pytest.mark.parametrize(
    "text, expected",
    [("62023", "62023"), ("62023.0", "62023"), (" 62023 ", "62023"), ("1001", "01001"),
     ("200072460", "200072460"), ("RPE-BET", "RPE-BET"), ("2A004", "2A004"), (None, None)],
)
def test_normalise_code(text, expected):
    assert normalise_code(text) == expected


@pytest.mark.parametrize("text, expected", [("2017", 2017), ("2017.0", 2017), ("2017-12-31", 2017),
                                            ("2018-12-31T00:00:00", 2018), ("dix-sept", None)])
def test_parse_year_integer_or_date(text, expected):
    assert parse_year(text) == expected


def test_cell_text_renders_numbers_stored_in_excel():
    import datetime as dt

    assert _cell_text(62023.0) == "62023"
    assert _cell_text(12.5) == "12.5"
    assert _cell_text(dt.datetime(2017, 12, 31)) == "2017-12-31"
    assert _cell_text("  ") is None


def _grid(header_row: int, labels: list[str], rows: list[list]) -> list[list]:
    title = [["Base Communale Allocataires 2017"] + [None] * (len(labels) - 1)]
    blank = [[None] * len(labels)]
    top = title + blank * (header_row - 2)
    notes = blank + [["Source : Cnaf - BCA 2017, traitement CAF du Pas-de-Calais"] + [None] * (len(labels) - 1)]
    return top + [labels] + rows + notes


def _bca_labels(vintage):
    return list(vintage.columns)


def test_cut_table_skips_title_block_and_notes():
    vintage = load_catalog().vintage("bca", 2017)
    labels = _bca_labels(vintage) + ["EXTRA"]
    row = ["62023", "Allouagne"] + ["1"] * (len(labels) - 2)
    table = cut_table(_grid(vintage.header_row, labels, [row, row]), vintage, "BCA2017.xlsx", "BCA2017")
    assert len(table.frame) == 2
    assert table.header_row == vintage.header_row
    assert table.notes_rows == 1
    assert table.extra_columns == ["EXTRA"]
    assert table.frame["_row"].tolist() == [vintage.header_row + 1, vintage.header_row + 2]
    assert not table.warnings


def test_cut_table_finds_a_header_moved_down_and_warns():
    vintage = load_catalog().vintage("bca", 2017)
    labels = _bca_labels(vintage)
    row = ["62023", "Allouagne"] + ["1"] * (len(labels) - 2)
    table = cut_table(_grid(vintage.header_row + 3, labels, [row]), vintage, "BCA2017.xlsx", "BCA2017")
    assert table.header_row == vintage.header_row + 3
    assert "header found on row" in table.warnings[0]


def test_cut_table_renamed_key_column_is_a_clear_error():
    vintage = load_catalog().vintage("bca", 2017)
    labels = ["CODE_COMMUNE"] + _bca_labels(vintage)[1:]
    with pytest.raises(IngestError, match=r"BCA2017.xlsx: sheet 'BCA2017': no header row.*'Codes_Insee'"):
        cut_table(_grid(vintage.header_row, labels, [["62023"] * len(labels)]), vintage, "BCA2017.xlsx", "BCA2017")


def test_cut_table_renamed_measure_column_is_a_clear_error():
    vintage = load_catalog().vintage("bca", 2017)
    labels = [lbl if lbl != "NB_Enfants_0_2_ans" else "NB_ENF_MOINS_3" for lbl in _bca_labels(vintage)]
    with pytest.raises(IngestError, match=r"columns missing.*'NB_Enfants_0_2_ans' "
                                          r"\(Nombre d'enfants de moins de 3 ans des foyers allocataires, "
                                          r"enfants_moins_3_ans\)"):
        cut_table(_grid(vintage.header_row, labels, [["62023"] * len(labels)]), vintage, "BCA2017.xlsx", "BCA2017")


def _raw_bca(rows: list[dict]) -> pd.DataFrame:
    vintage = load_catalog().vintage("bca", 2017)
    frame = pd.DataFrame([{label: row.get(canonical) for label, canonical in vintage.columns.items()} for row in rows])
    frame["_row"] = range(7, 7 + len(frame))
    frame["_file"] = "BCA2017.xlsx"
    frame["_sheet"] = "BCA2017"
    return frame.astype(object).where(frame.notna(), None)


def test_stage_flags_secret_missing_and_zero_and_drops_technical_rows():
    catalog, territory = load_catalog(), load_territory()
    raw = _raw_bca(
        [
            {"code_zone": "62023", "allocataires": "120", "enfants_moins_3_ans": None, "aeeh_0_2_ans": "0",
             "aeeh_3_5_ans": "7"},
            {"code_zone": "62028.0", "allocataires": "s", "enfants_moins_3_ans": "nd", "aeeh_0_2_ans": "2",
             "aeeh_3_5_ans": None},
            {"code_zone": "XXXXX", "allocataires": "3"},
            {"code_zone": "99999", "allocataires": "1"},
        ]
    )
    staged = stage(raw, catalog.vintage("bca", 2017), catalog.source("bca"), catalog, territory)
    assert staged.technical_rows == 2
    assert staged.wide["code_zone"].tolist() == ["62023", "62028"]
    flags = staged.flags.set_index(staged.wide["code_zone"])
    assert flags.loc["62023", "allocataires"] == REPORTED
    assert flags.loc["62023", "enfants_moins_3_ans"] == SECRET  # blank in a CAF table
    assert flags.loc["62028", "allocataires"] == SECRET  # marker s
    assert flags.loc["62028", "enfants_moins_3_ans"] == MISSING  # marker nd
    assert flags.loc["62023", "aeeh_0_2_ans"] == REPORTED  # a real zero
    # derived: 0 + 7 known; 2 + blank unknown and secret
    assert flags.loc["62023", "enfants_moins_6_ans_aeeh"] == REPORTED
    assert staged.wide.set_index("code_zone").loc["62023", "enfants_moins_6_ans_aeeh"] == 7
    assert flags.loc["62028", "enfants_moins_6_ans_aeeh"] == SECRET
    long = staged.long()
    assert long["value"].notna().eq(long["flag"].eq(REPORTED)).all()


def test_stage_reports_text_in_a_number_column_without_its_value():
    catalog, territory = load_catalog(), load_territory()
    raw = _raw_bca([{"code_zone": "62023", "allocataires": "douze"}])
    staged = stage(raw, catalog.vintage("bca", 2017), catalog.source("bca"), catalog, territory)
    assert [(p.row, p.column) for p in staged.problems] == [(7, "NB_Allocataires")]
    assert "douze" not in str(staged.problems)


def test_stage_maps_former_commune_codes_and_merges_them(tmp_path, monkeypatch):
    import shutil

    from pipeline.settings import PACKAGE_ROOT

    shutil.copytree(PACKAGE_ROOT / "config", tmp_path / "config")
    (tmp_path / "config" / "commune_changes.csv").write_text(
        "ancien_code;nouveau_code;date_effet;motif\n62901;62023;2019-01-01;fusion (test)\n", encoding="utf-8"
    )
    monkeypatch.setenv("CAF_PROJECT_DIR", str(tmp_path))
    catalog, territory = load_catalog(), load_territory()
    raw = _raw_bca([{"code_zone": "62023", "allocataires": "100"}, {"code_zone": "62901", "allocataires": "20"}])
    staged = stage(raw, catalog.vintage("bca", 2017), catalog.source("bca"), catalog, territory)
    assert staged.wide["code_zone"].tolist() == ["62023"]
    assert staged.wide["allocataires"].tolist() == [120]


def test_sample_command_writes_a_national_territory(tmp_path):
    from pipeline.__main__ import main

    assert main(["sample", "--scale", "national", "--communes", "120", "--out", str(tmp_path / "raw")]) == 0
    assert (tmp_path / "config" / "territory.csv").exists()
    lines = (tmp_path / "config" / "territory.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 121
    assert any(p.name == "BCA2017.xlsx" for p in (tmp_path / "raw").iterdir())
