"""Compact reading of large warehouse tables (pipeline/frames.py)."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from pipeline.frames import as_text, read_compact


@pytest.fixture()
def con():
    con = duckdb.connect()
    con.execute("""CREATE TABLE t AS SELECT i, 'zone' || (i % 7) AS code,
                   CASE WHEN i % 3 = 0 THEN NULL ELSE 'p' || (i % 5) END AS parent,
                   i * 0.5 AS value, (i % 2)::INTEGER AS flag
                   FROM range(10000) r(i) ORDER BY i""")
    yield con
    con.close()


@pytest.mark.parametrize("vectors", [1, 2, 128])
def test_compact_reading_gives_the_same_table_in_categoricals(con, vectors):
    """Over several chunks (1 vector = 2,048 rows) and in one: same values, order,
    missing values (None, as `.df()` gives them), and numeric types."""
    plain = con.sql("SELECT * FROM t").df()
    compact = read_compact(con, "SELECT * FROM t", vectors=vectors)
    assert isinstance(compact["code"].dtype, pd.CategoricalDtype)
    assert isinstance(compact["parent"].dtype, pd.CategoricalDtype)
    assert compact["value"].dtype == plain["value"].dtype and compact["flag"].dtype == plain["flag"].dtype
    text = as_text(compact)
    pd.testing.assert_frame_equal(text, plain)
    assert text["parent"].iloc[0] is None
    assert compact.memory_usage(deep=True).sum() < plain.memory_usage(deep=True).sum() / 2


def test_an_empty_result_keeps_its_columns(con):
    compact = read_compact(con, "SELECT * FROM t WHERE i < 0")
    assert list(compact.columns) == ["i", "code", "parent", "value", "flag"] and compact.empty


def test_as_text_leaves_a_plain_frame_alone():
    frame = pd.DataFrame({"a": ["x", None], "b": [1.0, 2.0]})
    assert as_text(frame) is frame
