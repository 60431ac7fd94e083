"""config/tables.yaml as the one registry of the tables written: every table of a full run is
declared there and holds to it; the table writer refuses a write that breaks it, naming the
table, the column and a count of rows, never a value; the check derived from it blocks what
reads a bad table; the lock file pins every dependency of pyproject.toml."""

import re
import tomllib

import dagster as dg
import duckdb
import pandas as pd
import pytest

from pipeline import tables
from pipeline.config_models.base import validated
from pipeline.config_models.governance import TablesFile
from pipeline.defs.shapes import SHAPE_CHECK, shape_check
from pipeline.resources import WarehouseResource
from pipeline.settings import PACKAGE_ROOT
from pipeline.table_writer import TableShapeError, table_problems, write_rows, write_table
from pipeline.tables import PUBLISHED_TABLE, TablesError, is_declared, primary_key

SECRET_ZONE = "62999"  # a value in the rows written: it must never appear in a message


def published_rows(**changes) -> pd.DataFrame:
    """Three rows of published.indicators, as the masking writes them."""
    frame = pd.DataFrame({
        "level": ["commune", "commune", "rpe"],
        "zone_code": ["62001", SECRET_ZONE, "RPE-1"],
        "zone_name": ["A", "B", "R"],
        "parent_code": ["RPE-1", "RPE-1", "200"],
        "indicator": ["naissances"] * 3,
        "year": pd.array([2020, 2020, 2020], dtype="int32"),
        "value": [12.0, None, 30.0],
        "status": ["published", "masked", "published"],
        "study_id": ["s"] * 3,
    })
    for column, (row, value) in changes.items():
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
    return frame


def test_every_table_a_full_run_writes_is_declared_and_holds_to_it(built_warehouse):
    con = duckdb.connect(str(built_warehouse), read_only=True)
    try:
        written = con.execute(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables() UNION ALL "
            "SELECT schema_name || '.' || view_name FROM duckdb_views() WHERE NOT internal "
            "AND schema_name NOT IN ('main', 'information_schema', 'pg_catalog')").fetchall()
        names = sorted(name for (name,) in written)
        assert [n for n in names if not is_declared(n)] == []
        for name in names:
            if name.startswith("raw."):
                continue  # the files' own columns: tests/test_tables.py
            tables.described_schema(con, name)  # every column declared (a wide view's <indicator>_<year> too)
            if not tables.is_view(name):
                assert table_problems(con, name) == [], name
    finally:
        con.close()
    # the tables the brief named as once undeclared are among those written
    assert {"confidential.masking_log", "lineage.ingest_ledger", "confidential.indicator_definitions",
            "confidential.indicators_wide_commune"} <= set(names)


def test_every_table_the_code_names_is_declared():
    named = {value for name, value in vars(tables).items() if name.endswith(("_TABLE", "_PATTERN"))}
    assert named and [n for n in named if not is_declared(n.replace("*", "x"))] == []
    assert primary_key(PUBLISHED_TABLE) == ["level", "zone_code", "indicator", "year"]
    assert primary_key(tables.CANDIDATE_TABLE) == primary_key(PUBLISHED_TABLE)  # same_columns_as


@pytest.mark.parametrize("changes, column, rule", [
    ({"zone_code": (1, "62001")}, "level, zone_code, indicator, year", "1 row(s) repeat the primary key"),
    ({"status": (1, SECRET_ZONE)}, "status", "1 row(s) hold a value outside the allowed ones"),
    ({"level": (2, "canton")}, "level", "1 row(s) hold a value outside the allowed ones"),
    ({"year": (0, SECRET_ZONE + "x")}, "year", "1 row(s) do not fit its declared type INTEGER"),
    ({"year": (0, 2020.5)}, "year", "1 row(s) do not fit its declared type INTEGER"),
])
def test_a_write_breaking_the_declaration_is_refused_naming_table_and_column(changes, column, rule):
    con = duckdb.connect()
    write_table(con, PUBLISHED_TABLE, published_rows())
    with pytest.raises(TableShapeError) as refused:
        write_table(con, PUBLISHED_TABLE, published_rows(**changes))
    message = str(refused.value)
    assert f"{PUBLISHED_TABLE}, column {column}: {rule}" in message
    assert SECRET_ZONE not in message and "canton" not in message  # never a value
    assert con.execute(f"SELECT count(*) FROM {PUBLISHED_TABLE}").fetchall() == [(3,)]  # nothing written


def test_the_writer_creates_the_declared_types_and_refuses_undeclared_tables_and_columns():
    con = duckdb.connect()
    frame = published_rows().astype({"year": "int64"})  # pandas' int64 fits the INTEGER column
    write_table(con, PUBLISHED_TABLE, frame)
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {PUBLISHED_TABLE})").fetchall())
    assert types["year"] == "INTEGER" and types["value"] == "DOUBLE"
    with pytest.raises(TableShapeError, match="column extra: not declared"):
        write_table(con, PUBLISHED_TABLE, frame.assign(extra=1))
    with pytest.raises(TableShapeError, match="column study_id: declared but missing"):
        write_table(con, PUBLISHED_TABLE, frame.drop(columns="study_id"))
    with pytest.raises(TableShapeError, match="published.other is not declared"):
        write_table(con, "published.other", frame)


def test_appended_rows_are_checked_against_the_whole_table_and_rolled_back():
    con = duckdb.connect()
    ledger = pd.DataFrame({"source": ["bca"], "year": [2020], "file_name": ["f.xlsx"], "sheet": [None],
                           "size_bytes": [10], "sha256": ["h"], "received_at": [pd.Timestamp("2024-01-01")],
                           "ingested_at": [pd.Timestamp("2024-01-02")], "run_id": ["r"], "rows": [3]})
    ledger = ledger.astype({"sheet": "string"})
    write_rows(con, tables.LEDGER_TABLE, ledger, "source = ? AND year = ?", ["bca", 2020])
    write_rows(con, tables.LEDGER_TABLE, ledger, "source = ? AND year = ?", ["bca", 2020])  # replaced, not doubled
    con.execute("BEGIN TRANSACTION")
    with pytest.raises(TableShapeError, match=r"lineage.ingest_ledger, column source, year: 1 row\(s\) repeat"):
        write_rows(con, tables.LEDGER_TABLE, ledger, "source = ?", ["other"])
    con.execute("ROLLBACK")
    assert con.execute(f"SELECT count(*) FROM {tables.LEDGER_TABLE}").fetchall() == [(1,)]


def test_the_derived_check_blocks_what_reads_a_bad_published_table(tmp_path):
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))

    @dg.asset(name="out_indicators")
    def bad_published(warehouse: WarehouseResource) -> None:
        with warehouse.connect() as con:  # written around the writer: what the check is there for
            con.register("rows", published_rows(status=(1, "pending"), zone_code=(1, "62001")))
            con.execute("CREATE SCHEMA published")
            con.execute(f"CREATE TABLE {PUBLISHED_TABLE} AS SELECT * FROM rows")

    @dg.asset(deps=[bad_published])
    def report() -> None:
        pass

    result = dg.materialize([bad_published, report, shape_check(bad_published.key, PUBLISHED_TABLE)],
                            resources={"warehouse": warehouse}, raise_on_error=False)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == SHAPE_CHECK and not evaluation.passed
    problems = evaluation.metadata["problems"].value
    assert f"{PUBLISHED_TABLE}, column status: 1 row(s) hold a value outside the allowed ones " \
           "(published, masked, not_available)" in problems
    assert any("column level, zone_code, indicator, year: 1 row(s) repeat" in p for p in problems)
    assert "pending" not in str(problems)
    assert dg.AssetKey("report") not in {m.asset_key for m in result.get_asset_materialization_events()}


def test_a_shape_check_is_derived_for_every_table_asset():
    from pipeline.definitions import defs

    checked = {key.asset_key.to_user_string() for c in defs.asset_checks for key in c.check_keys
               if key.name == SHAPE_CHECK}
    assert {"out_indicators", "core_masking", "core_indicators", "core_indicator_inputs",
            "core_indicators_evolution"} <= checked


def test_the_registry_refuses_a_misspelt_key_and_a_key_of_no_column():
    doc = {"tables": {"published.x": {"primary_kye": ["a"], "columns": {"a": {"type": "VARCHAR"}}}}}
    with pytest.raises(TablesError, match=r"tables.published.x.primary_kye is an unknown key.*primary_key"):
        validated(TablesFile, doc, "config/tables.yaml", TablesError)
    doc = {"tables": {"published.x": {"primary_key": ["b"], "columns": {"a": {"type": "VARCHAR"}}}}}
    with pytest.raises(TablesError, match="primary_key names b, not among the table's columns"):
        validated(TablesFile, doc, "config/tables.yaml", TablesError)


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_the_lock_file_pins_every_dependency_of_pyproject_with_hashes():
    project = tomllib.loads((PACKAGE_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    wanted |= {_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    lock = (PACKAGE_ROOT / "requirements.lock").read_text(encoding="utf-8")
    pinned = {m.group(1).lower().replace("_", "-"): m.group(2)
              for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", lock, re.M)}
    assert sorted(wanted - set(pinned)) == []
    assert lock.count("--hash=sha256:") >= len(pinned)  # each pin with the hashes of its files


def test_a_zone_level_of_the_catalog_that_the_tables_do_not_allow_is_refused_by_validate(tmp_path):
    import shutil

    from pipeline.config_models.project import check_config
    from pipeline.settings import Paths

    shutil.copytree(PACKAGE_ROOT / "config", tmp_path / "config")
    path = tmp_path / "config" / "tables.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("allowed: [commune, rpe, epci, iris]",
                                                             "allowed: [commune, rpe, epci]"), encoding="utf-8")
    paths = Paths(root=tmp_path, config=tmp_path / "config", raw=tmp_path / "raw",
                  warehouse=tmp_path / "w.duckdb", reports=tmp_path / "reports")
    problems = check_config(paths)
    assert f"config/tables.yaml: {PUBLISHED_TABLE}.level does not allow the zone level iris of " \
           "config/catalog.yaml (add it to `allowed`)" in problems
