"""Large tables in pandas without a Python object per text cell.

What belongs here: reading a warehouse table with its text columns as categoricals
(`read_compact`), and turning them back into plain text columns (`as_text`), for the
steps that hold a national table in memory (the masking and its audit). What does
not: connecting to the warehouse (`pipeline.resources`).
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals


def read_compact(con: duckdb.DuckDBPyConnection, query: str, vectors: int = 128) -> pd.DataFrame:
    """The result of `query` with its text columns as categoricals, read in chunks
    (`vectors` x 2,048 rows): a pandas text cell is a Python object of about 60 bytes,
    so a national table (2.2 million rows, six text columns) takes 1.2 GB as text and
    0.13 GB as categoricals, and its reading peaks at the size of a chunk instead of
    twice the table's. Values and row order are those of `.df()`; write such a frame
    back with its columns `as_text` (a categorical column would become an ENUM)."""
    cursor = con.execute(query)
    parts = []
    while True:
        chunk = cursor.fetch_df_chunk(vectors)
        if chunk.empty and parts:
            break
        parts.append(chunk.astype({c: "category" for c in chunk.columns if chunk[c].dtype == object}))
        if chunk.empty:
            break
    if len(parts) == 1:
        return parts[0]
    columns = {}
    for c in parts[0].columns:
        if isinstance(parts[0][c].dtype, pd.CategoricalDtype):
            columns[c] = union_categoricals([p[c] for p in parts])
        else:
            columns[c] = np.concatenate([p[c].to_numpy() for p in parts])
    return pd.DataFrame(columns)


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its categorical columns back to text (object) columns, missing as None."""
    categorical = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    if not categorical:
        return frame
    out = frame.copy()
    for c in categorical:
        column = out[c].astype(object)
        out[c] = column.where(column.notna(), None)
    return out
