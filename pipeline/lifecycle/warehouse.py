"""The DuckDB warehouse at the end of the study: inventory and fingerprints of every table,
values derived from the raw tables for the residue scan, the copy of what is kept into a
fresh file, and the query of every text column left.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import duckdb

from pipeline.classification import load_catalog_or_none
from pipeline.fingerprint import table_digest as _fingerprint_digest
from pipeline.lifecycle.gate import DestructionError
from pipeline.lifecycle.rules import REDUCED_TABLES, classify_table
from pipeline.lifecycle.scanner import Sentinel

MIN_DERIVED_LENGTH = 6
MAX_DERIVED = 5000
DERIVE_FROM_SCHEMAS = ("raw",)  # the faithful copies of the files the CAF sent
_NUMBERISH = re.compile(r"^[\d\s\u00a0\u202f.,;:%/+\-()*'\"]*$")
_IDENTIFIER = re.compile(
    r"^(?:[0-9a-fA-F]{16,}"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)


def scan_duckdb_tables(db: Path, sentinels: list[Sentinel], display: str) -> tuple[int, list[dict]]:
    """Search every text column of every table of a DuckDB file (compressed strings
    included, which a byte scan might miss)."""
    if not db.exists() or not sentinels:
        return 0, []
    texts = [s.text for s in sentinels]
    origins = {s.text: s.origin for s in sentinels}
    con = duckdb.connect(str(db), read_only=True)
    hits = []
    try:
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal AND NOT temporary"
        ).fetchall()
        for schema, table in tables:
            columns = [
                c for c, t in con.execute(
                    "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
                    [schema, table],
                ).fetchall()
                if t == "VARCHAR"
            ]
            for column in columns:
                rows = con.execute(
                    f'SELECT s, count(*) FROM "{schema}"."{table}" t, (SELECT unnest(?::VARCHAR[]) AS s) '
                    f'WHERE contains(t."{column}", s) GROUP BY s',
                    [texts],
                ).fetchall()
                for text, n in rows:
                    hits.append({"path": f"{display} :: {schema}.{table}.{column}", "form": "texte (SQL)",
                                 "origin": origins[text], "count": int(n)})
        return len(tables), hits
    finally:
        con.close()




def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qualified(schema: str, table: str, catalog: str | None = None) -> str:
    return (f"{_q(catalog)}." if catalog else "") + f"{_q(schema)}.{_q(table)}"


def table_digest(con: duckdb.DuckDBPyConnection, qualified: str) -> tuple[int, str]:
    """(rows, fingerprint) of a table: `pipeline.fingerprint`'s, so that the certificate lists
    the published table under the fingerprint its metadata, the reports and the manifest give."""
    return _fingerprint_digest(con, qualified)


def warehouse_inventory(con: duckdb.DuckDBPyConnection) -> dict:
    tables = con.execute(
        "SELECT schema_name, table_name, column_count FROM duckdb_tables() "
        "WHERE NOT internal AND NOT temporary AND database_name = current_database() ORDER BY 1, 2"
    ).fetchall()
    views = con.execute(
        "SELECT schema_name, view_name FROM duckdb_views() "
        "WHERE NOT internal AND NOT temporary AND database_name = current_database() ORDER BY 1, 2"
    ).fetchall()
    out: dict[str, list] = {"tables_destroyed": [], "tables_kept": [], "tables_reduced": [], "views_destroyed": [],
                            "views_kept": []}
    catalog = load_catalog_or_none()  # read once: each source's tables follow its declaration
    for schema, table, n_columns in tables:
        action, reason = classify_table(schema, table, catalog)
        rows, digest = table_digest(con, _qualified(schema, table))
        item = {"table": f"{schema}.{table}", "rows": rows, "columns": int(n_columns), "sha256": digest,
                "reason": reason}
        if action == "reduce":
            columns = [c for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
                "AND database_name = current_database() ORDER BY column_index", [schema, table]).fetchall()]
            keep = [c for c in REDUCED_TABLES[f"{schema}.{table}"][0] if c in columns]
            item.update(columns_kept=keep, columns_removed=[c for c in columns if c not in keep])
        out[{"destroy": "tables_destroyed", "keep": "tables_kept", "reduce": "tables_reduced"}[action]].append(item)
    for schema, view in views:
        action, reason = classify_table(schema, view, catalog)
        key = "views_kept" if action == "keep" else "views_destroyed"
        out[key].append({"view": f"{schema}.{view}", "reason": reason})
    return out


def derive_sentinels(con: duckdb.DuckDBPyConnection, exclude: Callable[[str], bool]) -> tuple[list[str], dict]:
    """Distinctive text cells of the raw tables, i.e. of the files the CAF sent (labels, extra
    columns; length >= 6; not numbers, hashes or ids; not anywhere in what is kept or public,
    which `exclude` says): kept in memory only. With what was met, in counts (for the
    certificate to say why there are none, when there are none)."""
    found: set[str] = set()
    columns = con.execute(
        "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
        "WHERE data_type = 'VARCHAR' AND database_name = current_database() "
        "AND schema_name IN (SELECT unnest(?::VARCHAR[])) ORDER BY 1, 2, 3",
        [list(DERIVE_FROM_SCHEMAS)],
    ).fetchall()
    base_tables = {
        (s, t) for s, t in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    }
    raw_tables = {(s, t) for s, t in base_tables if s in DERIVE_FROM_SCHEMAS}
    for schema, table, column in columns:
        if (schema, table) not in base_tables or column.startswith("_"):  # _file, _sheet: provenance
            continue
        values = con.execute(
            f"SELECT DISTINCT trim({_q(column)}) FROM {_qualified(schema, table)} "
            f"WHERE length(trim({_q(column)})) >= {MIN_DERIVED_LENGTH}"
        ).fetchall()
        for (value,) in values:
            if value and not _NUMBERISH.match(value) and not _IDENTIFIER.match(value):
                found.add(value)
    derived = sorted(v for v in found if not exclude(v))[:MAX_DERIVED]
    return derived, {"state": "ok", "raw_tables": len(raw_tables), "candidates": len(found), "derived": len(derived)}


def kept_text_values(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every text value of what is kept (published tables, reduced ledger columns)."""
    values: set[str] = set()
    catalog = load_catalog_or_none()
    for schema, table, column in con.execute(
        "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
        "WHERE data_type = 'VARCHAR' AND database_name = current_database()"
    ).fetchall():
        name = f"{schema}.{table}"
        action, _ = classify_table(schema, table, catalog)
        if action == "keep" or (action == "reduce" and column in REDUCED_TABLES[name][0]):
            values.update(v for (v,) in con.execute(
                f"SELECT DISTINCT trim({_q(column)}) FROM {_qualified(schema, table)} WHERE {_q(column)} IS NOT NULL"
            ).fetchall())
    return values


def warehouse_inventory_empty() -> dict:
    return {"tables_destroyed": [], "tables_kept": [], "tables_reduced": [], "views_destroyed": [], "views_kept": []}


def table_digests(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, str]]:
    """(rows, content SHA-256) of every table of the database."""
    return {
        f"{schema}.{table}": table_digest(con, _qualified(schema, table))
        for schema, table in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal"
        ).fetchall()
    }


def copy_kept(db: Path, fresh: Path, inv: dict) -> None:
    """Copy what `inv` keeps (tables, reduced tables, views) from `db` into the new file
    `fresh`, checking each kept table's fingerprint; fills in `sha256_after` (and `rows_after`)."""
    expected = {i["table"]: i["sha256"] for i in inv["tables_kept"]}
    con = duckdb.connect(str(db))
    try:
        old = con.execute("SELECT current_database()").fetchone()[0]
        con.execute(f"ATTACH '{str(fresh).replace(chr(39), chr(39) * 2)}' AS fresh")
        con.execute("USE fresh")
        creates = {
            f"{s}.{t}": sql for s, t, sql in con.execute(
                "SELECT schema_name, table_name, sql FROM duckdb_tables() WHERE database_name = ?", [old]
            ).fetchall()
        }
        for item in inv["tables_kept"]:
            schema, table = item["table"].split(".", 1)
            con.execute(f"CREATE SCHEMA IF NOT EXISTS fresh.{_q(schema)}")
            con.execute(creates[item["table"]])
            con.execute(f"INSERT INTO {_qualified(schema, table, 'fresh')} "
                        f"SELECT * FROM {_qualified(schema, table, old)}")
            _, digest = table_digest(con, _qualified(schema, table, "fresh"))
            if digest != expected[item["table"]]:
                raise DestructionError(f"{item['table']}: the copy differs from the original; nothing was destroyed")
            item["sha256_after"] = digest
        for item in inv["tables_reduced"]:
            schema, table = item["table"].split(".", 1)
            con.execute(f"CREATE SCHEMA IF NOT EXISTS fresh.{_q(schema)}")
            cols = ", ".join(_q(c) for c in item["columns_kept"])
            con.execute(f"CREATE TABLE {_qualified(schema, table, 'fresh')} AS "
                        f"SELECT {cols} FROM {_qualified(schema, table, old)}")
            item["rows_after"], item["sha256_after"] = table_digest(con, _qualified(schema, table, "fresh"))
        views = con.execute(
            "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE database_name = ? AND NOT internal", [old]
        ).fetchall()
        kept_views = {v["view"] for v in inv["views_kept"]}
        for schema, view, sql in views:
            if f"{schema}.{view}" in kept_views:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS fresh.{_q(schema)}")
                con.execute(sql)
        con.execute(f"USE {_q(old)}")
        con.execute("DETACH fresh")
    finally:
        con.close()
