"""The fingerprint of a table's content: one function, so that the published table has
the same fingerprint in the asset's metadata (`out_indicators`), the reports' "Version des
données" (its first 12 characters), the compliance manifest and the destruction
certificate.

sha256 of the table's rows, each cast to text by DuckDB, sorted and joined by newlines:
independent of row order, computed inside DuckDB (a national table never goes through
Python). A pandas frame gets the same fingerprint as the table it was read from: it is
registered in an in-memory DuckDB and hashed by the same query.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from pipeline.tables import PUBLISHED_TABLE

_QUERY = ("SELECT count(*), sha256(coalesce(string_agg(CAST(t AS VARCHAR), chr(10) ORDER BY CAST(t AS VARCHAR)), '')) "
          "FROM {} t")


def table_digest(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, str]:
    """(rows, fingerprint) of a table or view of `con`."""
    rows, digest = con.execute(_QUERY.format(table)).fetchall()[0]
    return int(rows), str(digest)


def table_fingerprint(con: duckdb.DuckDBPyConnection, table: str = PUBLISHED_TABLE) -> str:
    return table_digest(con, table)[1]


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """The fingerprint of the table `frame` was read from (same columns, same order)."""
    con = duckdb.connect()
    try:
        con.register("frame_to_hash", frame)
        return table_digest(con, "frame_to_hash")[1]
    finally:
        con.close()
