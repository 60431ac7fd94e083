"""Tests of the indicator warehouse (pipeline/defs/warehouse.py, pipeline/sql/*.sql).

Expected values are computed here in plain Python on small hand-made staging tables,
independently of the SQL, and compared with what DuckDB produces.
"""

import json
import math

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.catalog import load_catalog
from pipeline.defs import warehouse as wh
from pipeline.indicators import IndicatorError, check_against_catalog, load_indicators, parse_indicators

# ---- a small hand-made territory and definitions ------------------------------------

EPCI = "999999999"
ZONES = pd.DataFrame(
    [
        ("epci", EPCI, "Agglo test", None),
        ("rpe", "RPE-A", "RPE A", EPCI),
        ("rpe", "RPE-B", "RPE B", EPCI),
        ("commune", "00001", "Une", "RPE-A"),
        ("commune", "00002", "Deux", "RPE-A"),
        ("commune", "00003", "Trois", "RPE-A"),
        ("commune", "00004", "Quatre", "RPE-B"),
        ("commune", "00005", "Cinq", "RPE-B"),
    ],
    columns=["level", "zone_code", "zone_name", "parent_code"],
)
RPE_A = ["00001", "00002", "00003"]
RPE_B = ["00004", "00005"]
COMMUNES = RPE_A + RPE_B

SMALL_DOC = {
    "allocataires": {"source": "bca", "measure": "allocataires"},
    "reconciliation_tolerance": 0.001,
    "indicators": {
        "enfants": {
            "label": "Nombre d'enfants", "unit": "enfants", "kind": "count", "producer": "CAF",
            "source": "bca", "measure": "enfants_moins_3_ans", "years": [2017, 2018, 2019],
        },
        "taux_fem": {
            "label": "Taux", "unit": "%", "kind": "ratio", "producer": "CAF", "source": "bca",
            "numerator": "femmes_actives", "denominator": "femmes", "multiplier": 100,
            "years": [2017, 2018],
        },
        "couverture": {
            "label": "Taux de couverture", "unit": "places pour 100 enfants", "kind": "ratio",
            "producer": "Cnaf", "source": "couverture", "numerator": "places_accueil",
            "denominator": "enfants_cnaf", "multiplier": 100,
            "published_measure": "taux_couverture_global", "years": [2017],
        },
        "places": {
            "label": "Places à créer", "unit": "places", "kind": "count", "producer": "CAF",
            "source": "places_a_creer", "measure": "places_theoriques_a_creer", "years": [2020],
        },
    },
}
SMALL = parse_indicators(SMALL_DOC)

SECRET, MISSING = "s", "m"  # markers in the hand-made rows


def staging_frame(source: str, rows: list[tuple]) -> pd.DataFrame:
    """rows: (year, level, zone_code, measure, value) with value a number, SECRET or MISSING."""
    records = []
    for i, (year, level, zone, measure, v) in enumerate(rows):
        flag = "secret_at_source" if v == SECRET else "missing" if v == MISSING else "reported"
        value = float(v) if flag == "reported" else None
        records.append((source, year, level, zone, measure, value, flag, f"{source}.xlsx", None, i + 2))
    frame = pd.DataFrame(
        records,
        columns=["source", "year", "level", "zone_code", "measure", "value", "flag", "file_name", "sheet",
                 "source_row"],
    )
    return frame.astype({"year": "int32", "value": "float64", "source_row": "int32", "sheet": "string"})


def write_staging(con: duckdb.DuckDBPyConnection, tables: dict[str, list[tuple]], sources=None) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    for source in sources or SMALL.sources:
        frame = staging_frame(source, tables.get(source, []))
        con.register("_f", frame)
        con.execute(f"CREATE OR REPLACE TABLE staging.{source} AS SELECT * FROM _f")
        con.unregister("_f")


def build_all(con, tables, indicators=SMALL, zones=ZONES):
    write_staging(con, tables, indicators.sources)
    report = wh.build_indicator_inputs(con, indicators, zones)
    wh.build_indicators(con, indicators)
    wh.build_evolution(con, indicators)
    return report


def indicator_row(con, level, zone, indicator, year) -> dict:
    rows = con.execute(
        "SELECT * FROM confidential.indicators WHERE level = ? AND zone_code = ? AND indicator = ? AND year = ?",
        [level, zone, indicator, year],
    ).df()
    assert len(rows) == 1, (level, zone, indicator, year, len(rows))
    row = rows.iloc[0].to_dict()
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


@pytest.fixture
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


# ---- independent expectations (plain Python) -----------------------------------------


def py_commune(cell):
    """(value, status) of one commune cell: cell is a number, SECRET, MISSING or None (no row)."""
    if cell is None or cell == MISSING:
        return None, "not_available"
    if cell == SECRET:
        return None, "secret_at_source"
    return float(cell), "ok"


def py_aggregate(commune_cells: list, caf=None):
    """(value, status, value_origin) of an RPE/EPCI: the sum when every commune is known,
    else the producer's own figure, else unknown. A blank is never a zero."""
    values = [py_commune(c)[0] for c in commune_cells]
    if commune_cells and all(v is not None for v in values):
        return sum(values), "ok", "computed"
    if caf is not None and caf not in (SECRET, MISSING):
        return float(caf), "ok", "caf_aggregate"
    if caf == SECRET:
        return None, "secret_at_source", "caf_aggregate"
    return None, "not_available", "computed"


def py_ratio(num: float | None, den: float | None, multiplier=100.0):
    if num is None or den is None or den == 0:
        return None
    return num * multiplier / den


# ---- the definitions -----------------------------------------------------------------

ANNEX_LABELS = {
    "am_agrees_actifs_annee": "Nombre assistants maternels agréés actifs sur au moins 1 mois de l'année de référence",
    "am_actifs_decembre": "Nombre assistants maternels agréés en activité au cours du mois de décembre",
    "am_taux_activite": "Taux d'activité des assistants maternels",
    "am_plus_55_ans": "Nombre d'assistants maternels de plus de 55 ans",
    "enfants_moins_3_ans": "Nombre d'enfants de moins de 3 ans",
    "enfants_moins_3_ans_cmg": "Nombre d'enfants de moins de 3 ans bénéficiaires du CMG",
    "enfants_moins_6_ans_aeeh": "Nombre d'enfants de moins de 6 ans avec AEEH",
    "taux_activite_feminine_enfants_moins_3_ans": "Taux d'activité féminine avec enfants de moins de 3 ans",
    "naissances": "Nombre de naissances",
    "enfants_moins_3_ans_scolarises": "Nombre d'enfants de moins de 3 ans scolarisés",
    "taux_couverture_global": "Taux de couverture global",
    "places_theoriques_a_creer": "Nombre de places théoriques d'enfants de moins de 3 ans à créer en mode de garde",
}
Y5, Y4, Y3 = list(range(2017, 2022)), list(range(2017, 2021)), list(range(2017, 2020))
ANNEX_YEARS = {
    **{i: Y5 for i in list(ANNEX_LABELS)[:8]},
    "naissances": Y4,
    "enfants_moins_3_ans_scolarises": Y4,
    "taux_couverture_global": Y3,
    "places_theoriques_a_creer": [2020],
}


def test_config_has_the_twelve_indicators_of_the_annex():
    defs = load_indicators()
    # the annex's indicators have figures for the communes; one more exists at the IRIS only
    assert [i.id for i in defs.indicators if i.communal] == list(ANNEX_LABELS)
    assert [(i.id, i.source) for i in defs.indicators if not i.communal] == [("allocataires", "caf_iris")]
    for ind in (i for i in defs.indicators if i.communal):
        assert ind.label == ANNEX_LABELS[ind.id]
        assert list(ind.years) == ANNEX_YEARS[ind.id]
        assert ind.producer in ("CAF", "Cnaf", "INSEE")
    ratios = {i.id: (i.numerator, i.denominator, i.multiplier) for i in defs.indicators if i.kind == "ratio"}
    assert ratios == {
        "am_taux_activite": ("am_actifs_decembre", "am_agrees_actifs_annee", 100.0),
        "taux_activite_feminine_enfants_moins_3_ans": (
            "femmes_actives_enfants_moins_3_ans", "femmes_enfants_moins_3_ans", 100.0),
        "taux_couverture_global": ("places_accueil", "enfants_moins_3_ans_cnaf", 100.0),
    }
    assert {i.id: i.producer for i in defs.indicators if i.producer != "CAF"} == {
        "naissances": "INSEE", "enfants_moins_3_ans_scolarises": "INSEE", "taux_couverture_global": "Cnaf",
    }


def test_config_matches_the_source_catalog():
    assert check_against_catalog(load_indicators(), load_catalog()) == []


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kind": "average"}, "kind must be"),
        ({"producer": "DREES"}, "producer must be"),
        ({"years": "2017-2021"}, "years must be"),
        ({"numerator": "x"}, "a count has no"),
        ({"colour": "red"}, "colour is an unknown key"),
    ],
)
def test_invalid_definitions_are_refused(change, message):
    doc = json.loads(json.dumps(SMALL_DOC))
    doc["indicators"]["enfants"].update(change)
    with pytest.raises(IndicatorError, match=message):
        parse_indicators(doc)


def test_ratio_without_denominator_is_refused():
    doc = json.loads(json.dumps(SMALL_DOC))
    del doc["indicators"]["taux_fem"]["denominator"]
    with pytest.raises(IndicatorError, match="needs `denominator`"):
        parse_indicators(doc)


# ---- aggregation rules -----------------------------------------------------------------


def test_counts_are_summed_and_a_blank_commune_uses_the_caf_aggregate_or_is_not_available(con):
    m = "enfants_moins_3_ans"
    cells_2017 = {"00001": 10, "00002": 20, "00003": SECRET, "00004": 5, "00005": 7}
    cells_2018 = {"00001": 11, "00002": 21, "00003": SECRET, "00004": 6, "00005": 8}
    rows = [(2017, "commune", z, m, v) for z, v in cells_2017.items()]
    rows += [(2017, "rpe", "RPE-A", m, 33), (2017, "epci", EPCI, m, 45)]  # CAF's own figures
    rows += [(2018, "commune", z, m, v) for z, v in cells_2018.items()]  # no CAF figure in 2018
    rows += [(2019, "commune", z, m, 1) for z in COMMUNES if z != "00002"]  # 00002 absent in 2019
    rows += [(2019, "rpe", "RPE-A", m, SECRET)]  # the CAF blanked its own figure
    build_all(con, {"bca": rows})

    for year, cells, caf in [(2017, cells_2017, {"RPE-A": 33, EPCI: 45}), (2018, cells_2018, {})]:
        for zone in COMMUNES:
            value, status = py_commune(cells[zone])
            row = indicator_row(con, "commune", zone, "enfants", year)
            assert (row["value"], row["status"], row["value_origin"]) == (value, status, "source")
        for level, zone, members in [("rpe", "RPE-A", RPE_A), ("rpe", "RPE-B", RPE_B), ("epci", EPCI, COMMUNES)]:
            expected = py_aggregate([cells[c] for c in members], caf.get(zone))
            row = indicator_row(con, level, zone, "enfants", year)
            assert (row["value"], row["status"], row["value_origin"]) == expected, (year, zone)

    # the concrete cases the issue names
    assert indicator_row(con, "rpe", "RPE-A", "enfants", 2017)["value_origin"] == "caf_aggregate"
    assert indicator_row(con, "rpe", "RPE-A", "enfants", 2017)["value"] == 33
    a2018 = indicator_row(con, "rpe", "RPE-A", "enfants", 2018)
    assert (a2018["value"], a2018["status"]) == (None, "not_available")  # never 32 (the known part)
    assert indicator_row(con, "rpe", "RPE-B", "enfants", 2018)["value"] == 14
    assert indicator_row(con, "epci", EPCI, "enfants", 2018)["status"] == "not_available"
    # 2019: a commune without a row is unknown, not zero; a blanked CAF figure stays secret
    assert indicator_row(con, "commune", "00002", "enfants", 2019)["status"] == "not_available"
    a2019 = indicator_row(con, "rpe", "RPE-A", "enfants", 2019)
    assert (a2019["value"], a2019["status"], a2019["value_origin"]) == (None, "secret_at_source", "caf_aggregate")
    assert indicator_row(con, "rpe", "RPE-B", "enfants", 2019)["value"] == 2


def test_lower_bound_is_kept_internally_only(con):
    m = "enfants_moins_3_ans"
    build_all(con, {"bca": [(2017, "commune", "00001", m, 10), (2017, "commune", "00002", m, SECRET),
                            (2017, "commune", "00003", m, 4)]})
    lower = con.execute(
        "SELECT lower_bound_internal, value FROM confidential.indicator_inputs "
        "WHERE zone_code = 'RPE-A' AND measure = ? AND year = 2017", [m]
    ).fetchone()
    assert lower == (14.0, None)
    assert indicator_row(con, "rpe", "RPE-A", "enfants", 2017)["value"] is None


def test_ratio_is_sum_of_numerators_over_sum_of_denominators_never_an_average(con):
    num = {"00001": 1, "00002": 9, "00003": 30, "00004": 2, "00005": 3}
    den = {"00001": 2, "00002": 30, "00003": 40, "00004": 4, "00005": 12}
    rows = [(2017, "commune", z, "femmes_actives", v) for z, v in num.items()]
    rows += [(2017, "commune", z, "femmes", v) for z, v in den.items()]
    build_all(con, {"bca": rows})

    for z in COMMUNES:
        row = indicator_row(con, "commune", z, "taux_fem", 2017)
        assert row["value"] == pytest.approx(py_ratio(num[z], den[z]))
        assert (row["numerator"], row["denominator"]) == (num[z], den[z])
    for level, zone, members in [("rpe", "RPE-A", RPE_A), ("rpe", "RPE-B", RPE_B), ("epci", EPCI, COMMUNES)]:
        expected = py_ratio(sum(num[c] for c in members), sum(den[c] for c in members))
        average = sum(py_ratio(num[c], den[c]) for c in members) / len(members)
        assert abs(expected - average) > 1  # the example tells the two apart
        row = indicator_row(con, level, zone, "taux_fem", 2017)
        assert row["value"] == pytest.approx(expected)
        assert row["value"] != pytest.approx(average)
        assert (row["status"], row["value_origin"]) == ("ok", "computed")
    assert indicator_row(con, "rpe", "RPE-A", "taux_fem", 2017)["value"] == pytest.approx(40 * 100 / 72)


def test_ratio_uses_the_caf_aggregate_of_a_term_and_is_unknown_when_a_term_is(con):
    rows = [(2017, "commune", z, "femmes_actives", v) for z, v in zip(COMMUNES, [1, SECRET, 3, 4, 5])]
    rows += [(2017, "commune", z, "femmes", 10) for z in COMMUNES]
    rows += [(2017, "rpe", "RPE-A", "femmes_actives", 6)]
    rows += [(2018, "commune", z, "femmes_actives", 1) for z in COMMUNES]
    rows += [(2018, "commune", z, "femmes", v) for z, v in zip(COMMUNES, [10, 10, 0, 0, 0])]
    build_all(con, {"bca": rows})
    a = indicator_row(con, "rpe", "RPE-A", "taux_fem", 2017)
    assert a["value"] == pytest.approx(py_ratio(6, 30))
    assert (a["value_origin"], a["status"]) == ("caf_aggregate", "ok")
    assert indicator_row(con, "commune", "00002", "taux_fem", 2017)["status"] == "secret_at_source"
    e = indicator_row(con, "epci", EPCI, "taux_fem", 2017)
    assert (e["value"], e["numerator"], e["denominator"], e["status"]) == (None, None, 50.0, "not_available")
    # a zero denominator gives no value (not an error, not infinity)
    b = indicator_row(con, "rpe", "RPE-B", "taux_fem", 2018)
    assert (b["value"], b["status"]) == (None, "not_available")


def test_coverage_rate_above_100_is_not_clamped(con):
    places = {"00001": 30, "00002": 12, "00003": 9, "00004": 40, "00005": 1}
    children = {"00001": 20, "00002": 10, "00003": 10, "00004": 50, "00005": 10}
    rows = [(2017, "commune", z, "places_accueil", v) for z, v in places.items()]
    rows += [(2017, "commune", z, "enfants_cnaf", v) for z, v in children.items()]
    rows += [(2017, "commune", z, "taux_couverture_global", round(py_ratio(places[z], children[z])))
             for z in COMMUNES]
    # the Cnaf's own EPCI figures: places and children add up; its rate is not a sum
    rows += [(2017, "epci", EPCI, "places_accueil", sum(places.values())),
             (2017, "epci", EPCI, "enfants_cnaf", sum(children.values())),
             (2017, "epci", EPCI, "taux_couverture_global", 92.1)]
    build_all(con, {"couverture": rows})
    row = indicator_row(con, "commune", "00001", "couverture", 2017)
    assert row["value"] == pytest.approx(150.0)
    assert row["source_value"] == 150.0  # the producer's own rate, kept for comparison
    a = indicator_row(con, "rpe", "RPE-A", "couverture", 2017)
    assert a["value"] == pytest.approx(py_ratio(51, 40))
    assert a["value"] > 100
    assert a["source_value"] is None  # the producer gives no RPE rate
    e = indicator_row(con, "epci", EPCI, "couverture", 2017)
    expected = py_ratio(sum(places.values()), sum(children.values()))
    assert (e["value"], e["source_value"], e["value_origin"]) == (pytest.approx(expected), 92.1, "computed")
    # rates are never summed over communes, so never reconciled as sums
    n_compared, mismatches = wh.find_reconciliation_mismatches(con, SMALL)
    assert (n_compared, len(mismatches)) == (2, 0)
    rate_sum = con.execute(
        "SELECT bottom_up_value, lower_bound_internal FROM confidential.indicator_inputs "
        "WHERE level = 'rpe' AND measure = 'taux_couverture_global'"
    ).fetchall()
    assert rate_sum == [(None, None), (None, None)]


def test_allocataires_column(con):
    rows = [(2017, "commune", z, "allocataires", 100 + i) for i, z in enumerate(COMMUNES)]
    rows += [(2017, "commune", z, "enfants_moins_3_ans", 1) for z in COMMUNES]
    build_all(con, {"bca": rows})
    assert indicator_row(con, "commune", "00002", "enfants", 2017)["allocataires"] == 101
    assert indicator_row(con, "rpe", "RPE-A", "taux_fem", 2017)["allocataires"] == 303
    assert indicator_row(con, "epci", EPCI, "enfants", 2017)["allocataires"] == 510
    assert indicator_row(con, "epci", EPCI, "enfants", 2018)["allocataires"] is None


def test_years_outside_an_indicators_span_have_no_row(con):
    rows = [(y, "commune", z, "places_theoriques_a_creer", 3) for y in (2019, 2020, 2021) for z in COMMUNES]
    build_all(con, {"places_a_creer": rows})
    years = con.execute("SELECT DISTINCT year FROM confidential.indicators WHERE indicator = 'places'").fetchall()
    assert years == [(2020,)]
    per_indicator = dict(con.execute("SELECT indicator, count(*) FROM confidential.indicators GROUP BY 1").fetchall())
    n_zones = len(ZONES)
    assert per_indicator == {"enfants": 3 * n_zones, "taux_fem": 2 * n_zones, "couverture": n_zones, "places": n_zones}
    # an empty source still gives every zone a row, not_available
    statuses = con.execute("SELECT DISTINCT status FROM confidential.indicators WHERE indicator = 'enfants'").fetchall()
    assert statuses == [("not_available",)]


def test_wide_views_have_one_row_per_zone_and_one_column_per_indicator_year(con):
    m = "enfants_moins_3_ans"
    build_all(con, {"bca": [(2018, "commune", z, m, 2) for z in COMMUNES]})
    wide = con.execute("SELECT * FROM confidential.indicators_wide_rpe ORDER BY zone_code").df()
    assert list(wide["zone_code"]) == ["RPE-A", "RPE-B"]
    assert list(wide["enfants_2018"]) == [6, 4]
    expected_cols = {f"{i.id}_{y}" for i in SMALL.indicators for y in i.years}
    assert expected_cols <= set(wide.columns)
    assert "places_2019" not in wide.columns
    assert len(con.execute("SELECT * FROM confidential.indicators_wide_commune").df()) == len(COMMUNES)


def test_evolution_is_computed_only_from_known_values(con):
    m = "enfants_moins_3_ans"
    first = {"00001": 10, "00002": 20, "00003": 0, "00004": SECRET, "00005": 8}
    last = {"00001": 15, "00002": SECRET, "00003": 4, "00004": 5, "00005": 6}
    rows = [(2017, "commune", z, m, v) for z, v in first.items()]
    rows += [(2019, "commune", z, m, v) for z, v in last.items()]
    rows += [(2019, "rpe", "RPE-B", m, 11)]
    build_all(con, {"bca": rows})
    evo = con.execute(
        "SELECT * FROM confidential.indicators_evolution WHERE indicator = 'enfants'"
    ).df().set_index("zone_code")
    assert set(con.execute("SELECT DISTINCT indicator FROM confidential.indicators_evolution").fetchall()) == {
        ("enfants",)
    }  # counts over several years only: not ratios, not single-year indicators
    assert (evo.loc["00001", "first_year"], evo.loc["00001", "last_year"]) == (2017, 2019)
    for z in COMMUNES:
        f, _ = py_commune(first[z])
        last_value, _ = py_commune(last[z])
        if f is None or last_value is None:
            assert pd.isna(evo.loc[z, "change_abs"]) and pd.isna(evo.loc[z, "change_pct"])
            assert evo.loc[z, "status"] == "secret_at_source"
        else:
            assert evo.loc[z, "change_abs"] == last_value - f
            if f == 0:
                assert pd.isna(evo.loc[z, "change_pct"])
            else:
                assert evo.loc[z, "change_pct"] == pytest.approx((last_value - f) * 100 / f)
    assert evo.loc["00001", "change_pct"] == pytest.approx(50.0)
    # RPE-B: 2017 unknown (a blank commune, no CAF figure) -> no change, even though 2019 is known
    assert evo.loc["RPE-B", "value_last_year"] == 11
    assert pd.isna(evo.loc["RPE-B", "change_abs"]) and evo.loc["RPE-B", "status"] == "not_available"
    assert pd.isna(evo.loc["RPE-A", "change_abs"])


def test_reconciliation_passes_when_sums_match_and_lists_codes_when_they_do_not(con):
    m = "enfants_moins_3_ans"
    rows = [(y, "commune", z, m, v) for y in (2017, 2018) for z, v in zip(COMMUNES, [1, 2, 3, 4, 5])]
    rows += [(2017, "rpe", "RPE-A", m, 6), (2017, "rpe", "RPE-B", m, 9), (2017, "epci", EPCI, m, 15)]
    build_all(con, {"bca": rows})
    n_compared, mismatches = wh.find_reconciliation_mismatches(con, SMALL)
    assert (n_compared, len(mismatches)) == (3, 0)

    rows += [(2018, "rpe", "RPE-B", m, 10)]  # the CAF says 10, its communes add up to 9
    rows += [(2018, "commune", z, "femmes", 1) for z in COMMUNES] + [(2018, "epci", EPCI, "femmes", 5)]
    # not compared: a commune is blank, so the CAF figure is used, not checked
    rows += [(2018, "commune", "00001", "femmes_actives", SECRET), (2018, "rpe", "RPE-A", "femmes_actives", 99)]
    build_all(con, {"bca": rows})
    n_compared, mismatches = wh.find_reconciliation_mismatches(con, SMALL)
    assert n_compared == 5
    listed = mismatches.to_dict("records")
    assert listed == [
        {"level": "rpe", "zone_code": "RPE-B", "source": "bca", "measure": m, "year": 2018, "indicators": ["enfants"]},
    ]


def test_a_missing_staging_table_fails_with_a_hint(con):
    write_staging(con, {}, ["bca", "couverture"])
    with pytest.raises(wh.WarehouseBuildError, match="materialize stg_places_a_creer"):
        wh.build_indicator_inputs(con, SMALL, ZONES)


def test_duplicate_staging_rows_fail(con):
    m = "enfants_moins_3_ans"
    write_staging(con, {"bca": [(2017, "commune", "00001", m, 1), (2017, "commune", "00001", m, 2)]})
    with pytest.raises(wh.WarehouseBuildError, match="several rows"):
        wh.build_indicator_inputs(con, SMALL, ZONES)


def test_staging_report_lists_unknown_zones_and_absent_years(con):
    m = "enfants_moins_3_ans"
    report = build_all(con, {"bca": [(2017, "commune", "12345", m, 1), (2017, "commune", "00001", m, 1)]})
    assert report.unknown_zones == ["commune:12345"]
    assert "bca 2018" in report.absent_source_years and "bca 2017" not in report.absent_source_years
    assert "couverture 2017" in report.absent_source_years


def test_a_failed_rebuild_leaves_the_previous_tables_readable(con):
    m = "enfants_moins_3_ans"
    build_all(con, {"bca": [(2017, "commune", z, m, 1) for z in COMMUNES]})
    before = con.execute("SELECT count(*) FROM confidential.indicators").fetchone()
    con.execute("DROP TABLE confidential.indicator_inputs")
    with pytest.raises(duckdb.Error):
        wh.build_indicators(con, SMALL)
    assert con.execute("SELECT count(*) FROM confidential.indicators").fetchone() == before


# ---- the content hash of the metadata ---------------------------------------------------


def _hash_of(con, rows: list[tuple]) -> str:
    frame = pd.DataFrame(rows, columns=["year", "zone_code", "indicator", "value", "status"])
    con.register("_rows", frame)
    con.execute("CREATE OR REPLACE TABLE t AS SELECT * FROM _rows")
    con.unregister("_rows")
    return wh._content_hash(con, "t")


ROWS = [
    (2017, "62119", "allocataires", 120.0, "published"),
    (2017, "62023", "allocataires", None, "masked"),
    (2018, "62119", "allocataires", 131.5, "published"),
    (2018, "62119", "allocataires", 131.5, "published"),  # a duplicate row counts
]


def test_content_hash_does_not_depend_on_row_order(con):
    first = _hash_of(con, ROWS)
    assert len(first) == 32
    assert _hash_of(con, list(reversed(ROWS))) == first
    assert _hash_of(con, [ROWS[2], ROWS[0], ROWS[3], ROWS[1]]) == first
    assert _hash_of(con, ROWS) == first  # deterministic


def test_content_hash_changes_with_any_cell(con):
    base = _hash_of(con, ROWS)
    changed = [
        [(*ROWS[0][:3], 121.0, ROWS[0][4]), *ROWS[1:]],  # a value
        [ROWS[0], (2017, "62023", "allocataires", 0.0, "masked"), *ROWS[2:]],  # a null becomes 0
        [ROWS[0], ROWS[1], (2018, "62119", "allocataires", 131.5, "masked"), ROWS[3]],  # a status
        ROWS[:3],  # a duplicate row dropped
        [(2017, "62120", *ROWS[0][2:]), *ROWS[1:]],  # a zone code
    ]
    hashes = [_hash_of(con, rows) for rows in changed]
    assert base not in hashes and len(set(hashes)) == len(hashes)
    # two cells swapped between rows is a change too, though each column keeps its values
    swapped = [(2017, "62119", "allocataires", 131.5, "published"), ROWS[1],
               (2018, "62119", "allocataires", 120.0, "published"), ROWS[3]]
    assert _hash_of(con, swapped) != base


def test_content_hash_of_an_empty_table(con):
    assert _hash_of(con, []) == "d41d8cd98f00b204e9800998ecf8427e"  # md5 of nothing, stable


# ---- property: any pattern of blanks under an RPE ---------------------------------------

cell = st.one_of(st.none(), st.just(SECRET), st.just(MISSING), st.integers(0, 500))


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(cell, min_size=3, max_size=3), caf=st.one_of(st.none(), st.just(SECRET), st.integers(0, 2000)))
def test_rpe_aggregate_matches_plain_python(cells, caf):
    m = "enfants_moins_3_ans"
    rows = [(2017, "commune", z, m, v) for z, v in zip(RPE_A, cells) if v is not None]
    if caf is not None:
        rows.append((2017, "rpe", "RPE-A", m, caf))
    with duckdb.connect() as mem:
        build_all(mem, {"bca": rows})
        row = indicator_row(mem, "rpe", "RPE-A", "enfants", 2017)
    assert (row["value"], row["status"], row["value_origin"]) == py_aggregate(cells, caf)
