"""Each schema rule, with one failing case each, on three-row tables."""

import pandas as pd
import pytest

from pipeline.catalog import load_catalog
from pipeline.staging import stage
from pipeline.territory import load_territory
from pipeline.validation import validate

# the sources whose zones are communes, RPE and EPCI (an IRIS file has its own tests)
COMMUNE_SOURCES = sorted(s.id for s in load_catalog().sources.values() if s.zone_level == "commune")


def staged_from(source: str, year: int, rows: list[dict]):
    """Stage hand-made rows given by canonical name, as if read from the source file."""
    catalog, territory = load_catalog(), load_territory()
    vintage = catalog.vintage(source, year)
    records = []
    for row in rows:
        record = {label: row.get(canonical) for label, canonical in vintage.columns.items()}
        if vintage.year_column:
            record[vintage.label_of[vintage.year_column]] = str(year)
        records.append(record)
    frame = pd.DataFrame(records)
    frame["_row"] = range(10, 10 + len(frame))
    frame["_file"] = vintage.file
    frame["_sheet"] = vintage.sheet
    frame = frame.astype(object).where(frame.notna(), None)
    return stage(frame, vintage, catalog.source(source), catalog, territory), territory


def three_rows(source: str) -> list[dict]:
    """Three valid rows: two communes of one RPE and that RPE."""
    measures = [m for m, spec in load_catalog().source(source).measures.items() if not spec.sum_of]
    rows = []
    for code, value in (("62023", 40), ("62028", 20), ("RPE-LIL", 60)):
        rows.append({"code_zone": code, **{m: str(value) for m in measures}})
    return rows


@pytest.mark.parametrize("source", COMMUNE_SOURCES)
def test_valid_rows_pass(source):
    year = load_catalog().source(source).years[0]
    staged, territory = staged_from(source, year, three_rows(source))
    report = validate(staged, territory)
    assert report.passed, report.failures


def test_every_form_reads_every_declared_measure_or_declares_it_absent():
    catalog = load_catalog()
    for source in catalog.sources.values():
        declared = set(source.measures) - set(source.derived)
        for vintage in source.all_vintages:
            assert set(vintage.measures) | set(vintage.absent) == declared, (source.id, vintage.year, vintage.option)


def _failing(source: str, change: dict, row: int = 0, year: int | None = None):
    rows = three_rows(source)
    rows[row].update(change)
    year = year or load_catalog().source(source).years[0]
    staged, territory = staged_from(source, year, rows)
    report = validate(staged, territory)
    assert not report.passed
    return report


def test_negative_count_fails_with_row_and_source_column():
    report = _failing("bca", {"allocataires": "-3"})
    text = str(report.to_error())
    assert "BCA2017.xlsx" in text and "sheet 'BCA2017'" in text
    assert "column 'NB_Allocataires': must be ≥ 0, broken on 1 row (row 10)" in text
    assert "-3" not in text  # never the value


def test_fractional_count_fails():
    report = _failing("naissances", {"naissances": "3,5"})
    assert "must be a whole number" in str(report.to_error())


def test_census_counts_may_be_decimal():
    rows = three_rows("scolarisation")
    rows[0].update({"enfants_2_ans": "12,4", "enfants_moins_3_ans_scolarises": "1,6"})
    staged, territory = staged_from("scolarisation", 2017, rows)
    assert validate(staged, territory).passed


def test_coverage_rate_above_100_passes_but_absurd_rate_fails():
    rows = three_rows("couverture")
    rows[0]["taux_couverture_global"] = "134,2"
    staged, territory = staged_from("couverture", 2017, rows)
    assert validate(staged, territory).passed
    report = _failing("couverture", {"taux_couverture_global": "13420"})
    assert "must be ≤ 1000" in str(report.to_error())


def test_text_in_a_number_column_fails():
    report = _failing("bcecpaj", {"am_actifs_decembre": "douze"}, year=2018)
    text = str(report.to_error())
    assert "column 'Nb AM actifs en décembre': must be a number or a secrecy marker" in text
    assert "douze" not in text


def test_duplicated_commune_fails():
    report = _failing("bca", {"code_zone": "62028"})
    assert "one row per zone and year" in str(report.to_error())


def test_unknown_commune_code_fails_with_hint():
    report = _failing("bca", {"code_zone": "62999"})
    text = str(report.to_error())
    assert "must be a zone of the territory referential" in text
    assert "62999" in text and "config/commune_changes.csv" in text


@pytest.mark.parametrize(
    "source, change, rule",
    [
        ("bcecpaj", {"am_actifs_decembre": "41"}, "am_actifs_decembre ≤ am_agrees_actifs_annee"),
        ("bcecpaj", {"am_plus_55_ans": "41"}, "am_plus_55_ans ≤ am_agrees_actifs_annee"),
        ("bca", {"enfants_moins_3_ans_cmg": "41"}, "enfants_moins_3_ans_cmg ≤ enfants_moins_3_ans"),
        ("bca", {"aeeh_0_2_ans": "41"}, "aeeh_0_2_ans ≤ enfants_moins_3_ans"),
        ("bca", {"femmes_actives_enfants_moins_3_ans": "41"},
         "femmes_actives_enfants_moins_3_ans ≤ femmes_enfants_moins_3_ans"),
        ("scolarisation", {"enfants_moins_3_ans_scolarises": "41"}, "enfants_moins_3_ans_scolarises ≤ enfants_2_ans"),
    ],
)
def test_cross_field_rules(source, change, rule):
    report = _failing(source, change, row=0)
    text = str(report.to_error())
    assert f"rule {rule} (columns " in text and ", broken on 1 row (row 10)" in text
    assert len(report.failures) == 1


def test_cross_field_rule_ignores_blanks():
    rows = three_rows("bcecpaj")
    rows[0].update({"am_agrees_actifs_annee": None, "am_actifs_decembre": "41"})
    staged, territory = staged_from("bcecpaj", 2017, rows)
    assert validate(staged, territory).passed


def test_absent_communes_are_a_warning():
    staged, territory = staged_from("bca", 2017, three_rows("bca"))
    report = validate(staged, territory)
    assert report.passed and "98 commune(s) of the referential have no row" in report.warnings[0]
