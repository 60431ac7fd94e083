"""Dagster resources: the DuckDB warehouse.

DuckDB lets one process at a time open a database file. Every connection therefore
goes through `WarehouseResource.connect()`, which holds an exclusive file lock beside
the database for as long as the connection is open, so that two runs started
together wait for each other instead of failing on a lock error. Writes are done
inside one transaction per asset (`replace_table`, `replace_rows`), so a run killed
mid-way leaves the previous version of every table readable.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd

from pipeline.settings import project_paths

# Dagster pool of every asset that writes the warehouse: one slot (.dagster_home/dagster.yaml),
# since DuckDB takes one writer per file; the file lock below backs it up.
WAREHOUSE_POOL = "warehouse"


class WarehouseLockTimeout(RuntimeError):
    pass


@contextmanager
def _file_lock(lock_path: Path, timeout_s: float) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WarehouseLockTimeout(
                        f"the warehouse {lock_path.with_suffix('')} stayed locked by another "
                        f"run for {timeout_s:.0f} s"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class WarehouseResource(dg.ConfigurableResource):
    """The project's DuckDB file (`warehouse/warehouse.duckdb` by default)."""

    path: str = ""
    lock_timeout_s: float = 600.0

    @property
    def database(self) -> Path:
        return Path(self.path) if self.path else project_paths().warehouse

    def lock(self):
        """The warehouse's file lock alone (the destruction holds it while it rewrites the file)."""
        db = self.database
        return _file_lock(db.with_name(db.name + ".lock"), self.lock_timeout_s)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        db = self.database
        db.parent.mkdir(parents=True, exist_ok=True)
        with self.lock():
            if read_only and not db.exists():
                raise FileNotFoundError(f"the warehouse {db} does not exist yet: run the pipeline first")
            con = duckdb.connect(str(db), read_only=read_only)
            try:
                yield con
            finally:
                con.close()


@dataclass(frozen=True)
class GovernedGraph:
    """The code location's asset graph, with governance applied (as the UI shows it), handed to
    the assets that read the whole graph (the compliance manifest, the destruction) as the
    resource `asset_graph`: they never import `pipeline.definitions` (an import cycle)."""

    graph: Any


ASSET_GRAPH_RESOURCE = "asset_graph"


def asset_graph_resource(governed: Callable[[], dg.Definitions]) -> dg.ResourceDefinition:
    """The resource `asset_graph`: the graph of `governed()`, resolved when a run first asks
    for it (the definitions it describes need this very resource to resolve)."""
    return dg.ResourceDefinition(
        resource_fn=lambda _init: GovernedGraph(governed().resolve_asset_graph()),
        description="The governed asset graph of this code location (read by the manifest and the destruction).",
    )


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One DuckDB transaction: everything inside is committed together or not at all."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def write_table(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """Create or replace `schema.table` with the rows of `frame` (inside the caller's transaction)."""
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{table.split(".")[0]}"')
    con.register("_frame", frame)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _frame")
    finally:
        con.unregister("_frame")


def write_rows(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, where: str, params: list) -> None:
    """Replace the rows of `table` matching `where` by `frame` (inside the caller's transaction).

    The table is created from the frame's columns the first time.
    """
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{table.split(".")[0]}"')
    con.register("_frame", frame)
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM _frame LIMIT 0")
        con.execute(f"DELETE FROM {table} WHERE {where}", params)
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _frame")
    finally:
        con.unregister("_frame")


def replace_table(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """Replace `schema.table` by `frame`, in a transaction of its own."""
    with transaction(con):
        write_table(con, table, frame)


def replace_rows(
    con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, where: str, params: list
) -> None:
    """Replace the rows of `table` matching `where` by `frame`, in a transaction of its own."""
    with transaction(con):
        write_rows(con, table, frame, where, params)
