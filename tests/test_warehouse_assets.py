"""Tests of the warehouse assets (pipeline/defs/warehouse.py) in Dagster: their lineage, a run
on the real territory and definitions, and the sample through ingest and the warehouse checked
against the generator's truth. The SQL's rules are tested in tests/test_warehouse.py."""

import json

import dagster as dg
import duckdb
import pandas as pd
import pytest
from conftest import SEED  # the seed of the session's sample files

from pipeline.catalog import load_catalog
from pipeline.defs import warehouse as wh
from pipeline.indicators import load_indicators
from pipeline.resources import ProjectResource, WarehouseResource
from pipeline.sample import sample_truth
from pipeline.territory import load_territory
from tests.test_warehouse import ANNEX_YEARS, MISSING, SECRET, py_aggregate, py_commune, py_ratio, staging_frame

# ---- Dagster wiring -------------------------------------------------------------------


def test_graph_each_asset_reads_exactly_its_sources():
    defs = dg.Definitions(
        assets=[wh.core_indicator_inputs, wh.core_indicators, wh.core_indicators_evolution],
        asset_checks=[wh.caf_aggregates_match_communes],
        resources={"project": ProjectResource(), "warehouse": WarehouseResource(path="unused.duckdb")},
    )
    graph = defs.resolve_asset_graph()
    parents = {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
               for k in graph.get_all_asset_keys()}
    assert parents["core_indicator_inputs"] == {f"stg_{s}" for s in load_indicators().sources} == {
        "stg_bca", "stg_bcecpaj", "stg_naissances", "stg_scolarisation", "stg_couverture", "stg_places_a_creer",
        "stg_caf_iris",  # the IRIS (below_commune)
    }
    assert parents["core_indicators"] == {"core_indicator_inputs"}
    assert parents["core_indicators_evolution"] == {"core_indicators"}
    for asset in (wh.core_indicator_inputs, wh.core_indicators, wh.core_indicators_evolution):
        spec = next(iter(asset.specs))
        assert spec.group_name == "warehouse" and spec.kinds == {"duckdb"} and spec.description


def _stub_staging_asset(source: str, frame: pd.DataFrame) -> dg.AssetsDefinition:
    @dg.asset(name=f"stg_{source}")
    def _stub(warehouse: WarehouseResource) -> None:
        with warehouse.connect() as c:
            c.execute("CREATE SCHEMA IF NOT EXISTS staging")
            c.register("_f", frame)
            c.execute(f"CREATE OR REPLACE TABLE staging.{source} AS SELECT * FROM _f")

    return _stub


def test_materialize_with_the_real_territory_and_definitions(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    territory = load_territory()
    communes = territory.communes
    rpe = sorted(territory.rpe_names)[0]
    members = sorted(communes.loc[communes["code_rpe"] == rpe, "code_commune"])
    # distinctive values, to prove none reaches the Dagster metadata
    values = {z: 7001 + i for i, z in enumerate(members)}
    rows = [(2017, "commune", z, "am_agrees_actifs_annee", v) for z, v in values.items()]
    rows += [(2017, "rpe", rpe, "am_agrees_actifs_annee", sum(values.values()) + 1)]  # disagrees
    defs_real = load_indicators()
    frames = {s: staging_frame(s, rows if s == "bcecpaj" else []) for s in defs_real.sources}
    stubs = [_stub_staging_asset(s, f) for s, f in frames.items()]
    result = dg.materialize(
        [*stubs, wh.core_indicator_inputs, wh.core_indicators, wh.core_indicators_evolution,
         wh.caf_aggregates_match_communes],
        resources={"project": ProjectResource(),
                   "warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success  # the reconciliation check warns, it does not fail the run
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 1
    check = checks[0]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    meta = {k: v.value for k, v in check.metadata.items()}
    assert meta["mismatched_zones"] == [rpe]
    assert meta["mismatched_indicators"] == ["am_agrees_actifs_annee", "am_taux_activite"]
    assert meta["mismatched_years"] == [2017]
    everything = json.dumps(
        [{k: str(v.value) for k, v in m.metadata.items()} for m in result.get_asset_materialization_events()
         for m in [m.materialization]] + [{k: str(v) for k, v in meta.items()}]
    )
    for v in [*values.values(), sum(values.values()), sum(values.values()) + 1]:
        assert str(v) not in everything

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as c:
        n_zones = len(communes) + len(territory.rpe_names) + 1
        assert n_zones == 107
        counts = dict(c.execute(
            "SELECT level, count(DISTINCT zone_code) FROM confidential.indicators GROUP BY 1").fetchall())
        assert counts == {"commune": 100, "rpe": 6, "epci": 1}
        got = set(c.execute("SELECT DISTINCT indicator, year FROM confidential.indicators").fetchall())
        assert got == {(i, y) for i, ys in ANNEX_YEARS.items() for y in ys}
        assert c.execute("SELECT count(*) FROM confidential.indicators").fetchone()[0] == 52 * 107
        row = c.execute(
            "SELECT value, value_origin FROM confidential.indicators WHERE zone_code = ? "
            "AND indicator = 'am_agrees_actifs_annee' AND year = 2017", [rpe]
        ).fetchone()
        assert row == (sum(values.values()), "computed")


# ---- integration: the sample files through ingest and the warehouse ----------------------


def test_sample_through_ingest_and_warehouse(built_project):
    """The sample through ingest (per source and year) then the warehouse;
    confidential.indicators holds the 12 indicators x exactly their years x 107 zones."""
    from tests.helpers import materialize

    warehouse = WarehouseResource()  # CAF_PROJECT_DIR points at the isolated project
    result = materialize(["core_indicator_inputs", "core_indicators", "core_indicators_evolution"])
    assert result.success
    # the reconciliation, and each table's shape as config/tables.yaml declares it (pipeline/defs/shapes.py)
    evaluations = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {("core_indicator_inputs", "caf_aggregates_match_communes")} | {
        (a, "forme_declaree") for a in ("core_indicator_inputs", "core_indicators", "core_indicators_evolution")}
    assert all(passed for (_, name), passed in evaluations.items() if name == "forme_declaree")

    territory = load_territory()
    with warehouse.connect(read_only=True) as c:
        zones = dict(c.execute(
            "SELECT level, count(DISTINCT zone_code) FROM confidential.indicators GROUP BY 1").fetchall())
        assert zones == {"commune": 100, "rpe": 6, "epci": 1}
        got = c.execute("SELECT indicator, year, count(*) FROM confidential.indicators GROUP BY ALL").fetchall()
        assert {(i, y) for i, y, _ in got} == {(i, y) for i, ys in ANNEX_YEARS.items() for y in ys}
        assert {n for _, _, n in got} == {107}
        # the CAF files carry an EPCI row: every EPCI figure of theirs is known (all
        # communes known, or the CAF's own figure when a commune is blank)
        caf_sources = ("bca", "bcecpaj", "places_a_creer")
        caf_ids = [i.id for i in load_indicators().indicators if i.source in caf_sources]
        epci = c.execute(
            "SELECT indicator, year, status FROM confidential.indicators WHERE level = 'epci' "
            "AND list_contains(?, indicator)", [caf_ids]
        ).fetchall()
        assert len(epci) == 8 * 5 + 1
        assert all(s == "ok" for _, _, s in epci), [r for r in epci if r[2] != "ok"]
        assert c.execute("SELECT count(*) FROM confidential.indicators WHERE value < 0").fetchone()[0] == 0
        table = c.execute(
            "SELECT level, zone_code, indicator, year, value, numerator, denominator, value_origin, status "
            "FROM confidential.indicators"
        ).fetchall()
    expected = expected_from_truth(sample_truth(seed=SEED, with_published=True), territory, load_indicators())
    assert len(table) == len(expected) == 52 * 107
    wrong = []
    for level, zone, ind, year, value, _num, _den, origin, status in table:
        exp = expected[(level, zone, ind, year)]
        got = (None if value is None else round(value, 6), origin, status)
        want = (None if exp["value"] is None else round(exp["value"], 6), exp["origin"], exp["status"])
        if got != want:
            wrong.append((level, zone, ind, year))
        # a published value is the true one: never a lower bound, never a wrong CAF figure
        if status == "ok" and exp["true_value"] is not None:
            assert value == pytest.approx(exp["true_value"]), (level, zone, ind, year)
    assert wrong == []
    statuses = {e["status"] for e in expected.values()}
    origins = {e["origin"] for e in expected.values()}
    assert statuses == {"ok", "secret_at_source", "not_available"}  # the sample exercises every case
    assert origins == {"source", "computed", "caf_aggregate"}


def expected_from_truth(truth: pd.DataFrame, territory, indicators) -> dict:
    """Plain-Python expectation of every row of confidential.indicators from the sample's
    truth table: what the files publish (blank or not) decides value, status and origin;
    the values before secrecy give the true value a published figure must equal."""
    cells, true = {}, {}
    for r in truth.itertuples(index=False):
        key = (r.source, r.measure, int(r.year), r.level, r.zone_code)
        missing = r.value != r.value  # NaN
        cells[key] = MISSING if missing else (float(r.value) if r.published else SECRET)
        true[key] = None if missing else float(r.value)
    # measures the ingest derives (sum of terms; secret if a term is secret, else missing)
    for source in load_catalog().sources.values():
        for derived, terms in source.derived.items():
            for key in [k for k in list(cells) if k[0] == source.id and k[1] == terms[0]]:
                parts = [cells.get((key[0], t, *key[2:])) for t in terms]
                trues = [true.get((key[0], t, *key[2:])) for t in terms]
                dkey = (key[0], derived, *key[2:])
                if any(p is None for p in parts):
                    continue
                cells[dkey] = (SECRET if SECRET in parts else MISSING if MISSING in parts else sum(parts))
                true[dkey] = None if None in trues else sum(trues)
    communes = territory.communes
    members = {("rpe", code): list(communes.loc[communes["code_rpe"] == code, "code_commune"])
               for code in territory.rpe_names}
    members[("epci", territory.epci_code)] = list(communes["code_commune"])
    zones = [("commune", z) for z in communes["code_commune"]] + list(members)

    def measure(source, m, year, level, zone):
        if level == "commune":
            value, status = py_commune(cells.get((source, m, year, level, zone)))
            t = true.get((source, m, year, level, zone))
            return value, status, "source", t
        under = [cells.get((source, m, year, "commune", c)) for c in members[(level, zone)]]
        value, status, origin = py_aggregate(under, cells.get((source, m, year, level, zone)))
        trues = [true.get((source, m, year, "commune", c)) for c in members[(level, zone)]]
        t = sum(trues) if all(v is not None for v in trues) else true.get((source, m, year, level, zone))
        return value, status, origin, t

    out = {}
    for ind in indicators.indicators:
        for year in ind.years:
            for level, zone in zones:
                if ind.kind == "count":
                    value, status, origin, t = measure(ind.source, ind.measure, year, level, zone)
                else:
                    nv, ns, no, nt = measure(ind.source, ind.numerator, year, level, zone)
                    dv, ds, do, dt = measure(ind.source, ind.denominator, year, level, zone)
                    value = py_ratio(nv, dv, ind.multiplier)
                    status = ("ok" if value is not None else
                              "secret_at_source" if "secret_at_source" in (ns, ds) else "not_available")
                    origin = "caf_aggregate" if "caf_aggregate" in (no, do) else "computed"
                    t = py_ratio(nt, dt, ind.multiplier)
                out[(level, zone, ind.id, year)] = {"value": value, "status": status, "origin": origin, "true_value": t}
    return out
