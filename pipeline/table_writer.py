"""The project's table writer: every table goes to DuckDB as `config/tables.yaml` declares it.

A table is created with its declared columns and types (never `CREATE TABLE … AS SELECT *`,
which takes whatever types a frame happens to have), and a write is refused, before anything
is stored when it can be, when:
- a column is missing or not declared;
- a value does not fit its column's declared type without loss (text in a number column,
  2017.5 as a year);
- two rows share the primary key;
- a coded column (`status`, `level`, …) holds a value outside its `allowed` list.

The refusal is one `TableShapeError` naming the table, the column and how many rows offend:
never a value, since the rows may be confidential. The same rules, read on a table as stored,
are the blocking asset check of each table asset (`pipeline.defs.shapes`).

The raw copies (`raw.<source>_<year>`) are the exception: their columns are the file's own
labels, copied as text, so they are written as the frame is (`pipeline.tables.raw_columns`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import duckdb
import pandas as pd

from pipeline.config_models.governance import RAW_PATTERN
from pipeline.errors import PipelineError
from pipeline.tables import columns, is_declared, is_view, primary_key

_FRAME = "_table_writer_frame"


class TableShapeError(PipelineError, ValueError):
    """A write (or a stored table) that breaks the declaration of its table."""


@dataclass(frozen=True)
class Problem:
    """One broken rule of a table: where, which rule and how many rows (never a value)."""

    table: str
    column: str
    rule: str

    def __str__(self) -> str:
        return f"{self.table}, column {self.column}: {self.rule}"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@cache
def _canonical(con_type: str) -> str:
    """A DuckDB type as DuckDB names it (`TEXT` is `VARCHAR`, `INT` is `INTEGER`)."""
    con = duckdb.connect()
    try:
        return str(con.execute(f"SELECT typeof(CAST(NULL AS {con_type}))").fetchall()[0][0])
    finally:
        con.close()


def declared_types(table: str) -> dict[str, str]:
    return {c.name: _canonical(c.type) for c in columns(table)}


def _types(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    return {row[0]: str(row[1]) for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}


def _column_problems(table: str, found: dict[str, str]) -> list[Problem]:
    declared = declared_types(table)
    return ([Problem(table, c, "declared but missing") for c in declared if c not in found]
            + [Problem(table, c, "not declared in config/tables.yaml") for c in found if c not in declared])


def _type_problems(con, table: str, relation: str, found: dict[str, str], exact: bool) -> list[Problem]:
    """Columns whose type is not the declared one. `exact`: the type itself must be the
    declared one (a query of ours, a table as stored); else the values must go into the
    declared type and come back unchanged (a frame: pandas' int64 fits an INTEGER column)."""
    declared = declared_types(table)
    differ = {c: t for c, t in found.items() if c in declared and t != declared[c]}
    if exact:
        return [Problem(table, c, f"of type {t}, declared {declared[c]}") for c, t in differ.items()]
    if not differ:
        return []
    counts = ", ".join(
        f"count(*) FILTER (WHERE {_q(c)} IS NOT NULL AND TRY_CAST(TRY_CAST({_q(c)} AS {declared[c]}) AS {t}) "
        f"IS DISTINCT FROM {_q(c)})" for c, t in differ.items())
    bad = con.execute(f"SELECT {counts} FROM {relation}").fetchall()[0]
    return [Problem(table, c, f"{n} row(s) do not fit its declared type {declared[c]} (given as {t})")
            for (c, t), n in zip(differ.items(), bad) if n]


def _content_problems(con, table: str, relation: str) -> list[Problem]:
    """Rows repeating the primary key; coded columns holding a value outside their list."""
    problems = []
    key = primary_key(table)
    if key:
        (repeated,) = con.execute(
            f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {relation} "
            f"GROUP BY {', '.join(_q(c) for c in key)} HAVING count(*) > 1)").fetchall()[0]
        if repeated:
            problems.append(Problem(table, ", ".join(key), f"{int(repeated)} row(s) repeat the primary key of "
                                                           "another row"))
    coded = [c for c in columns(table) if c.allowed is not None]
    if coded:
        counts = ", ".join(
            f"count(*) FILTER (WHERE {_q(c.name)} IS NOT NULL AND CAST({_q(c.name)} AS VARCHAR) NOT IN "
            f"({', '.join(_literal(v) for v in c.allowed)}))" for c in coded)
        for column, n in zip(coded, con.execute(f"SELECT {counts} FROM {relation}").fetchall()[0]):
            if n:
                problems.append(Problem(table, column.name, f"{n} row(s) hold a value outside the allowed ones "
                                                            f"({', '.join(column.allowed)})"))
    return problems


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def table_problems(con: duckdb.DuckDBPyConnection, table: str) -> list[Problem]:
    """Everything a stored table breaks of its declaration: columns, types, key, allowed values."""
    found = _types(con, table)
    problems = _column_problems(table, found) + _type_problems(con, table, table, found, exact=True)
    return problems + (_content_problems(con, table, table) if not is_view(table) else [])


def _raise(problems: list[Problem]) -> None:
    if problems:
        raise TableShapeError("; ".join(str(p) for p in problems))


def _writable(table: str) -> None:
    if not is_declared(table):
        raise TableShapeError(f"{table} is not declared in config/tables.yaml: declare it (columns, types, key) "
                              "before writing it")
    if is_view(table):
        raise TableShapeError(f"{table} is declared as a view in config/tables.yaml: it is not written as a table")


def _create(con: duckdb.DuckDBPyConnection, table: str, replace: bool) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(table.split('.', 1)[0])}")
    body = ", ".join(f"{_q(c.name)} {c.type}" for c in columns(table))
    con.execute(f"CREATE {'OR REPLACE ' if replace else ''}TABLE {'' if replace else 'IF NOT EXISTS '}{table} "
                f"({body})")


def create_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """The table as declared, if it does not exist yet (never replaced: an append-only history)."""
    _writable(table)
    _create(con, table, replace=False)


def _is_raw(table: str) -> bool:
    return table.startswith(RAW_PATTERN[:-1])


def write_table(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """Create or replace `table` with the rows of `frame`, as declared (inside the caller's
    transaction); refused before anything is written if a row breaks the declaration."""
    con.register(_FRAME, frame)
    try:
        if _is_raw(table):  # the file's own columns, as text: no declaration to hold them to
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(table.split('.', 1)[0])}")
            con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {_FRAME}")
            return
        _writable(table)
        found = _types(con, _FRAME)
        _raise(_column_problems(table, found))
        _raise(_type_problems(con, table, _FRAME, found, exact=False) + _content_problems(con, table, _FRAME))
        _create(con, table, replace=True)
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {_FRAME}")
    finally:
        con.unregister(_FRAME)


def write_rows(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, where: str, params: list) -> None:
    """Replace the rows of `table` matching `where` by `frame` (inside the caller's
    transaction, which a refusal rolls back: the key is checked on the table as it becomes).
    The table is created as declared the first time."""
    _writable(table)
    con.register(_FRAME, frame)
    try:
        found = _types(con, _FRAME)
        _raise(_column_problems(table, found))
        _raise(_type_problems(con, table, _FRAME, found, exact=False))
        _create(con, table, replace=False)
        con.execute(f"DELETE FROM {table} WHERE {where}", params)
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {_FRAME}")
    finally:
        con.unregister(_FRAME)
    _raise(_content_problems(con, table, table))


def write_query(con: duckdb.DuckDBPyConnection, table: str, query: str) -> None:
    """Create or replace `table` with the rows of `query` (a SELECT of ours, run inside DuckDB:
    a national table never goes through pandas), inside the caller's transaction. Its
    columns must have exactly the declared types: a drift is a bug of the query."""
    _writable(table)
    # the query as it is, not wrapped in a sub-query: its ORDER BY stays the table's row order
    found = {row[0]: str(row[1]) for row in con.execute(f"DESCRIBE {query}").fetchall()}
    _raise(_column_problems(table, found) + _type_problems(con, table, table, found, exact=True))
    _create(con, table, replace=True)
    con.execute(f"INSERT INTO {table} BY NAME {query}")
    _raise(_content_problems(con, table, table))


def check_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Refuse (`TableShapeError`) a stored table that breaks its declaration."""
    _raise(table_problems(con, table))
