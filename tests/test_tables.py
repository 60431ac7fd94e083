"""The tables' columns are declared once (config/tables.yaml), described for a reviewer in
French and English, shown in the Dagster UI, and what the pipeline writes matches them."""

from __future__ import annotations

import duckdb
import pytest

from pipeline.catalog import load_catalog
from pipeline.definitions import defs
from pipeline.tables import (
    RAW_PATTERN,
    STAGING_PATTERN,
    TablesError,
    column_names,
    columns,
    described_schema,
    raw_columns,
)

GRAPH = defs.resolve_asset_graph()
TABLE_ASSETS = sorted(
    (k for k in GRAPH.get_all_asset_keys() if "dagster/column_schema" in (GRAPH.get(k).metadata or {})
     or "dagster/table_name" in (GRAPH.get(k).metadata or {})),
    key=lambda k: k.to_user_string(),
)
# the columns whose codes a reviewer must find explained, each code in its column's description
CODED = ("status", "value_origin", "flag", "source_flag", "level")


def test_every_table_asset_is_one():
    names = {k.to_user_string() for k in TABLE_ASSETS}
    catalog = load_catalog()
    assert names == {f"{p}_{s}" for s in catalog.sources for p in ("raw", "stg")} | {
        "core_indicator_inputs", "core_indicators", "core_indicators_evolution", "core_masking", "out_indicators"}


@pytest.mark.parametrize("key", TABLE_ASSETS, ids=lambda k: k.to_user_string())
def test_every_column_of_every_table_asset_is_described(key):
    schema = GRAPH.get(key).metadata["dagster/column_schema"]
    assert schema.columns
    for column in schema.columns:
        assert column.type, (key, column.name)
        fr, _, en = (column.description or "").partition(" — EN: ")
        assert len(fr.strip()) > 10 and len(en.strip()) > 10, (key, column.name, column.description)


def test_the_lists_of_published_and_staging_columns_are_the_declared_ones():
    from pipeline.disclosure.suppression import PUBLISHED_COLUMNS
    from pipeline.reports.context import PUBLISHED_COLUMNS as REPORTED
    from pipeline.staging import STAGING_COLUMNS

    published = column_names("published.indicators")
    assert published == PUBLISHED_COLUMNS + ["study_id"] == list(REPORTED)
    assert column_names("confidential.published_candidate") == published
    assert STAGING_COLUMNS == column_names("staging.bca") == column_names(STAGING_PATTERN)


def test_the_status_of_the_published_table_is_explained_as_the_reports_legend_says():
    from pipeline.reports.context import STATUSES

    status = {c.name: c for c in columns("published.indicators")}["status"]
    for code in STATUSES:
        assert code in status.fr and code in status.en
    # the legend's reading of a masked cell (docs/disclosure.md, pipeline/reports/texts.py)
    assert "ne jamais la compter comme zéro" in status.fr and "never add it as a zero" in status.en
    assert "« s »" in status.fr and "« nd »" in status.fr


def test_a_column_written_but_not_described_fails_naming_it():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA published; CREATE TABLE published.indicators AS "
                "SELECT 'commune' AS level, 'x' AS mystere")
    with pytest.raises(TablesError, match=r"\['mystere'\].*describe them"):
        described_schema(con, "published.indicators")


def test_what_the_pipeline_writes_is_what_is_declared_and_every_code_is_explained(built_warehouse):
    catalog = load_catalog()
    con = duckdb.connect(str(built_warehouse), read_only=True)
    try:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY 1, 2").fetchall()
        for schema, table in tables:
            name = f"{schema}.{table}"
            written = [r[0] for r in con.execute(f"DESCRIBE {name}").fetchall()]
            if schema == "raw":
                source = catalog.source(table.rsplit("_", 1)[0])
                described = raw_columns(source, written)
                assert [c.name for c in described] == written
                declared = {c.name for c in raw_columns(source)}
                undeclared = [c.name for c in described if c.name not in declared]
                # the sample's files carry a few columns the catalog does not read: they are said so
                assert all("ne déclare pas" in c.fr for c in described if c.name in undeclared)
                continue
            schema_of = described_schema(con, name)
            assert [c.name for c in schema_of.columns] == column_names(name), name
            by_name = {c.name: c for c in columns(name)}
            for column in CODED:
                if column in by_name:
                    for (code,) in con.execute(
                        f"SELECT DISTINCT {column} FROM {name} WHERE {column} IS NOT NULL"
                    ).fetchall():
                        assert code in by_name[column].fr and code in by_name[column].en, (name, column, code)
    finally:
        con.close()


def test_the_provenance_columns_of_a_raw_copy_are_described():
    assert column_names(RAW_PATTERN) == ["_row", "_file", "_sheet"]
