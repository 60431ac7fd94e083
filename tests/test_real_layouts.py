"""Published files, as published: INSEE's national long births file and the CAF data by
IRIS, read by the shipped catalog alone (fixtures: tests/fixtures/, see PROVENANCE.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline.__main__ import main
from pipeline.catalog import load_catalog
from pipeline.extract import extract, vintages_in_file
from pipeline.staging import MISSING, REPORTED, SECRET, stage
from pipeline.territory import load_territory
from pipeline.validation import validate

FIXTURES = Path(__file__).parent / "fixtures"
MELODI = FIXTURES / "insee_melodi" / "DS_ETAT_CIVIL_NAIS_COMMUNES_data.csv"
CAF_IRIS = FIXTURES / "caf_iris"


def staged_year(path: Path, source: str, year: int):
    catalog, territory = load_catalog(), load_territory()
    vintage = catalog.form_of_file(source, year, path.name)
    table = extract(path, vintage, None)
    staged = stage(table.frame, vintage, catalog.source(source), catalog, territory)
    return table, staged, validate(staged, territory, catalog)


def values(staged) -> dict[str, tuple[float | None, str]]:
    long = staged.long()
    return {(r.zone_code, r.measure): (None if r.value != r.value else r.value, r.flag) for r in long.itertuples()}


# ---- INSEE births, long national file ---------------------------------------------------------

def test_melodi_fixture_has_the_published_header_and_encoding():
    data = MELODI.read_bytes()
    assert data.split(b"\n", 1)[0] == b"EC_MEASURE;FREQ;GEO;GEO_OBJECT;OBS_STATUS;TIME_PERIOD;OBS_VALUE"
    assert not data.startswith(b"\xef\xbb\xbf") and b"\r\n" not in data


def test_the_catalog_knows_the_melodi_file_for_every_annex_year():
    found = vintages_in_file(MELODI, load_catalog())
    assert sorted(v.year for v, _ in found) == [2017, 2018, 2019, 2020]
    assert {v.source for v, _ in found} == {"naissances"} and all(v.layout == "long" for v, _ in found)


def test_melodi_keeps_the_territorys_communes_of_the_year_and_counts_the_rest():
    table, staged, report = staged_year(MELODI, "naissances", 2019)
    assert report.passed, report.to_error()
    # the raw copy of 2019 holds the 12 rows of 2019 only; 8 other years left out
    assert len(table.frame) == 12 and table.other_period_rows == 12 * 8
    got = values(staged)
    assert got[("62119", "naissances")] == (319.0, REPORTED)
    assert got[("62178", "naissances")] == (269.0, REPORTED)
    assert got[("62028", "naissances")] == (6.0, REPORTED)
    # OBS_STATUS M: missing, never a zero
    assert got[("62029", "naissances")] == (None, MISSING)
    # communes outside the territory (01001, 2A004, 75056) dropped and counted
    assert staged.rows_outside_territory == 3 and report.rows_outside_territory == 3
    # other levels (FRANCE, REG, DEP, ARM, and a BV2022 whose code looks like Béthune's) filtered out
    assert staged.rows_filtered == 5
    assert set(staged.wide["level"]) == {"commune"} and len(staged.wide) == 4


def test_melodi_with_quoted_values_and_crlf_reads_the_same(tmp_path):
    lines = MELODI.read_text(encoding="utf-8").splitlines()
    quoted = [lines[0]] + [";".join(f'"{cell}"' for cell in line.split(";")) for line in lines[1:]]
    path = tmp_path / MELODI.name
    path.write_bytes(("\r\n".join(quoted) + "\r\n").encode("utf-8-sig"))
    assert values(staged_year(path, "naissances", 2018)[1]) == values(staged_year(MELODI, "naissances", 2018)[1])


def test_melodi_malformed_commune_code_fails_naming_the_row(tmp_path):
    text = MELODI.read_text(encoding="utf-8").replace("LVB;A;62178;COM;A;2019;", "LVB;A;62I78;COM;A;2019;")
    path = tmp_path / MELODI.name
    path.write_text(text, encoding="utf-8")
    _, _staged, report = staged_year(path, "naissances", 2019)
    assert not report.passed
    message = str(report.to_error())
    row = text.splitlines().index("LVB;A;62I78;COM;A;2019;269") + 1
    assert "well-formed commune code" in message and f"row {row})" in message and "62I78" in message


def test_melodi_duplicate_zone_fails_naming_the_row(tmp_path):
    text = MELODI.read_text(encoding="utf-8") + "LVB;A;62119;COM;A;2019;12\n"
    path = tmp_path / MELODI.name
    path.write_text(text, encoding="utf-8")
    report = staged_year(path, "naissances", 2019)[2]
    assert not report.passed
    assert f"row {len(text.splitlines())})" in str(report.to_error())


def melodi_from_wide(wide_path: Path) -> str:
    """The sample's wide births file rewritten in INSEE's long layout, with the rest of
    France and other levels around it."""
    lines = wide_path.read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split(";")
    out = ["EC_MEASURE;FREQ;GEO;GEO_OBJECT;OBS_STATUS;TIME_PERIOD;OBS_VALUE"]
    for line in lines[1:]:
        cells = dict(zip(header, line.split(";")))
        for year in (2016, 2017, 2018, 2019, 2020, 2021):
            value = cells.get(f"NAISD{year % 100}", "0").replace("\u202f", "").replace("\u00a0", "")
            out.append(f"LVB;A;{cells['CODGEO']};COM;{'A' if value else 'M'};{year};{value}")
    out += [f"LVB;A;01{i:03d};COM;A;2019;{i}" for i in range(1, 40)] + ["LVB;A;62;DEP;A;2019;16000"]
    return "\n".join(out) + "\n"


def test_the_long_form_gives_the_staging_of_the_wide_form(sample_dir, tmp_path):
    """Year by year, the same staged values from either form of the births table."""
    wide_path = sample_dir / "base_naissances_2017_2020.csv"
    long_path = tmp_path / MELODI.name
    long_path.write_text(melodi_from_wide(wide_path), encoding="utf-8")
    for year in (2017, 2018, 2019, 2020):
        wide_staged = staged_year(wide_path, "naissances", year)[1]
        _, long_staged, report = staged_year(long_path, "naissances", year)
        assert report.passed, report.to_error()
        assert values(long_staged) == values(wide_staged), year
    assert long_staged.rows_outside_territory == 0  # 2020: no foreign row that year


def test_a_run_on_the_national_long_file_gives_the_same_indicators(sample_project, built_warehouse):
    """INSEE's national file dropped in raw/ under its published name instead of the wide
    one: every asset materializes, and the indicators (confidential.indicators, which the
    masking turns into published.indicators) are the same as from the wide file. (The
    published table itself was compared on the sample build: identical.)"""
    import duckdb

    from tests.helpers import materialize_all

    wide = sample_project / "raw" / "base_naissances_2017_2020.csv"
    (sample_project / "raw" / MELODI.name).write_text(melodi_from_wide(wide), encoding="utf-8")
    wide.unlink()
    assert not materialize_all()

    def tables(db: Path):
        con = duckdb.connect(str(db), read_only=True)
        try:
            indicators = con.sql("SELECT * FROM confidential.indicators").df()
            births = con.sql("SELECT year, zone_code, value, flag FROM staging.naissances").df()
            files = con.sql(
                "SELECT DISTINCT file_name FROM lineage.ingest_ledger WHERE source = 'naissances'"
            ).fetchall()
            published = con.execute("SELECT count(*) FROM published.indicators").fetchall()[0][0]
        finally:
            con.close()
        indicators = indicators.sort_values(["indicator", "level", "zone_code", "year"]).reset_index(drop=True)
        births = births.sort_values(["year", "zone_code"]).reset_index(drop=True)
        return indicators, births, files, published

    got, got_births, files, published = tables(sample_project / "warehouse" / "warehouse.duckdb")
    expected, expected_births, _, expected_published = tables(built_warehouse)
    assert files == [(MELODI.name,)]
    pd.testing.assert_frame_equal(got_births, expected_births, check_dtype=False)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert published == expected_published


# ---- CAF data by IRIS ----------------------------------------------------------------------------

@pytest.mark.parametrize("year", [2016, 2017, 2018, 2019, 2020])
def test_caf_iris_files_validate_as_published(year):
    path = CAF_IRIS / f"data_CAF_{year}_IRIS.csv"
    data = path.read_bytes()
    assert data.endswith(b"\r\n") and b";" in data.split(b"\r\n", 1)[0]
    if year <= 2018:
        assert data.startswith(b"\xef\xbb\xbfCODGEO;LIBGEO;DEPCOM;LIBCOM;EPCI;NOTE;A;PERCOU;")
        assert "\u202f".encode() in data
    else:
        data.decode("ascii")
        assert data.startswith(b"CODGEO;NOTE;A;PERCOU;")
    _, staged, report = staged_year(path, "caf_iris", year)
    assert report.passed, report.to_error()
    assert staged.rows_outside_territory == 4  # 62001, Ajaccio, Paris 1er, Les Abymes
    assert set(staged.wide["level"]) == {"iris"}
    got = values(staged)
    k = year - 2015
    assert got[("621190101", "allocataires")] == (1180.0 + k, REPORTED)  # "1 181": U+202F read
    assert got[("621190101", "personnes_couvertes")] == (2950.0 + k, REPORTED)
    # NOTE = 2: every value blank, a secret of the CAF, never a zero
    assert {got[("620280000", m)] for m in ("allocataires", "personnes_couvertes", "enfants")} == {(None, SECRET)}


def test_caf_iris_malformed_iris_code_fails_naming_the_row(tmp_path):
    path = tmp_path / "data_CAF_2020_IRIS.csv"
    path.write_bytes((CAF_IRIS / path.name).read_bytes().replace(b"621190102;", b"62119010;"))
    report = staged_year(path, "caf_iris", 2020)[2]
    assert not report.passed
    message = str(report.to_error())
    assert "well-formed iris code" in message and "(row 3)" in message and "62119010" in message


def test_validate_cli_takes_the_published_files_unedited(tmp_path, capsys):
    files = [shutil.copy2(p, tmp_path / p.name) for p in [MELODI, *sorted(CAF_IRIS.glob("*.csv"))]]
    assert main(["validate", *map(str, files)]) == 0
    out = capsys.readouterr().out
    assert "6 of 6 file(s) valid" in out
    assert "caf_iris 2016, 3 zones, 4 rows outside the territory left out" in out


# ---- Cnaf coverage rate by commune (data.caf.fr) ----------------------------------------------

COUVERTURE = FIXTURES / "cnaf_couverture" / "txcouv_pe_com.csv"


def test_data_caf_coverage_rate_reads_the_rate_and_declares_the_counts_absent():
    table, staged, report = staged_year(COUVERTURE, "couverture", 2018)
    assert report.passed, report.to_error()
    got = values(staged)
    assert got[("62119", "taux_couverture_global")] == (52.9, REPORTED)
    # places and children are not in this file: missing, never zero; named by validate
    assert got[("62119", "places_accueil")] == (None, MISSING)
    assert got[("62178", "enfants_moins_3_ans_cnaf")] == (None, MISSING)
    assert any("Nombre de places d'accueil formel du jeune enfant (places_accueil)" in w for w in report.warnings)
    # another department and Corsica (one over 100 %, never clamped) left out; other years too
    assert staged.rows_outside_territory == 2 and staged.other_year_rows == 12
    assert set(staged.wide["code_zone"]) == {"62119", "62178"}


# ---- data.caf.fr's first portal: children with AEEH by commune (2011-2014) ---------------------

CAF_OPEN = FIXTURES / "caf_open_com"
AEEH_FILES = {2011: "enfantAEEH2011.csv", 2012: "enfantAEEH2012.csv", 2013: "AEEHEnfCom2013.csv",
              2014: "enfantAEEH2014.csv"}


@pytest.mark.parametrize("year", sorted(AEEH_FILES))
def test_data_caf_aeeh_by_commune_validates_as_published(year):
    path = CAF_OPEN / AEEH_FILES[year]
    data = path.read_bytes()
    assert data.startswith(b"Communes;Codes_Insee;NB_enfant_AEEH;AEEH_0A2;AEEH_3A5;AEEH_6A11;AEEH_12A15;"
                           b"AEEH_16A17;AEEH_18A20\r\n")
    assert b";99999;" in data.split(b"\r\n")[1] and b";XXXXX;" in data.split(b"\r\n")[2]
    assert b"; ;" in data  # a blank is a single space
    assert [v.year for v, _ in vintages_in_file(path, load_catalog())] == [year]
    table, staged, report = staged_year(path, "caf_aeeh_com", year)
    assert report.passed, report.to_error()
    k = year - 2010
    got = values(staged)
    assert got[("62119", "enfants_aeeh")] == (60.0 + k, REPORTED)
    assert got[("62119", "aeeh_0_2_ans")] == (5.0 + k, REPORTED)
    # a blank ' ': the CAF's secret, never a zero
    assert got[("62178", "aeeh_0_2_ans")] == (None, SECRET)
    assert {got[("62028", m)] for m in ("enfants_aeeh", "aeeh_0_2_ans", "aeeh_3_5_ans")} == {(None, SECRET)}
    # residents abroad and unknown commune dropped as technical rows; 01001 and 2A004 left out
    assert staged.technical_rows == 2 and staged.rows_outside_territory == 2
    # the columns the catalog does not read stay in the raw copy
    assert {"AEEH_6A11", "AEEH_18A20"} <= set(table.extra_columns)


def test_data_caf_aeeh_files_are_public_and_kept_at_the_end_of_the_study():
    from pipeline.classification import PUBLIABLE, classify
    from pipeline.lifecycle import classify_table

    assert classify("staging", "caf_aeeh_com").classification == PUBLIABLE
    assert classify_table("raw", "caf_aeeh_com_2014")[0] == "keep"


# ---- INSEE births, wide national file (base_naissances_<year>.csv) ---------------------------

NAISSANCES_WIDE = FIXTURES / "insee_naissances" / "base_naissances_2021.csv"


def test_insee_wide_births_file_is_read_for_every_annex_year():
    data = NAISSANCES_WIDE.read_bytes()
    assert data.startswith(b"CODGEO;NAISD14;NAISD15;NAISD16;NAISD17;NAISD18;NAISD19;NAISD20;NAISD21\n")
    found = vintages_in_file(NAISSANCES_WIDE, load_catalog())
    assert sorted(v.year for v, _ in found) == [2017, 2018, 2019, 2020]
    for year in (2017, 2018, 2019, 2020):
        _, staged, report = staged_year(NAISSANCES_WIDE, "naissances", year)
        assert report.passed, report.to_error()
        got = values(staged)
        assert got[("62119", "naissances")] == (300.0 + year % 100, REPORTED)
        assert got[("62028", "naissances")] == (5.0 + year % 100, REPORTED)
        # 01001, Corsica, Paris and two of its arrondissements: outside the territory, counted
        assert staged.rows_outside_territory == 5
        assert set(staged.wide["code_zone"]) == {"62119", "62178", "62028"}


def test_validate_cli_takes_the_other_published_files_unedited(tmp_path, capsys):
    files = [shutil.copy2(p, tmp_path / p.name)
             for p in [NAISSANCES_WIDE, *sorted(CAF_OPEN.glob("*.csv"))]]
    assert main(["validate", *map(str, files)]) == 0
    assert "5 of 5 file(s) valid" in capsys.readouterr().out
