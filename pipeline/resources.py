"""Dagster resources: the project's settings (`project`), the DuckDB warehouse (`warehouse`)
and the governed asset graph (`asset_graph`).

`ProjectResource` gives the assets the project's folders and its configuration files
(config/), each file read once per run and shared by the steps of that run; empty fields
take the environment's values (`pipeline.settings.project_paths`: CAF_PROJECT_DIR and the
others), so the tests' isolated copies and `make run` use the same definitions.

DuckDB lets one process at a time open a database file. Every connection therefore
goes through `WarehouseResource.connect()`, which holds an exclusive file lock beside
the database for as long as the connection is open, so that two runs started
together wait for each other instead of failing on a lock error. Writes are done
inside one transaction per asset (`replace_table`, `replace_rows`), so a run killed
mid-way leaves the previous version of every table readable; each table is written as
`config/tables.yaml` declares it (`pipeline.table_writer`).
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
from pydantic import Field, PrivateAttr

from pipeline.catalog import Catalog, load_catalog
from pipeline.disclosure.policy import Policy, load_policy
from pipeline.indicators import IndicatorSet, load_indicators
from pipeline.settings import Paths, project_paths
from pipeline.study import Study, load_study
from pipeline.table_writer import write_rows, write_table  # the writers, as declared in config/tables.yaml
from pipeline.territory import Territory, load_territory

# Dagster pool of every asset that writes the warehouse: one slot (.dagster_home/dagster.yaml),
# since DuckDB takes one writer per file; the file lock below backs it up.
WAREHOUSE_POOL = "warehouse"


class ProjectResource(dg.ConfigurableResource):
    """The project's folders and configuration (config/), read once per run."""

    root: str = Field(default="", description="The project folder (default: CAF_PROJECT_DIR, or the code's folder).")
    config_dir: str = Field(default="", description="config/ (default: CAF_CONFIG_DIR, or <root>/config).")
    raw_dir: str = Field(default="", description="The files received (default: CAF_RAW_DIR, or <root>/raw).")
    reports_dir: str = Field(default="", description="The documents (default: CAF_REPORTS_DIR, or <root>/reports).")

    # the configuration files read in this run: the steps of one run share one reading
    _loaded: dict = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._loaded = {}

    @property
    def paths(self) -> Paths:
        base = project_paths()
        root = Path(self.root).resolve() if self.root else base.root
        return Paths(
            root=root,
            config=Path(self.config_dir) if self.config_dir else (root / "config" if self.root else base.config),
            raw=Path(self.raw_dir) if self.raw_dir else (root / "raw" if self.root else base.raw),
            warehouse=root / "warehouse" / "warehouse.duckdb" if self.root else base.warehouse,
            reports=Path(self.reports_dir) if self.reports_dir else (root / "reports" if self.root else base.reports),
        )

    def _load(self, name: str, loader: Callable[[Paths], Any]) -> Any:
        if name not in self._loaded:
            self._loaded[name] = loader(self.paths)
        return self._loaded[name]

    def catalog(self) -> Catalog:
        """config/catalog.yaml."""
        return self._load("catalog", load_catalog)

    def territory(self) -> Territory:
        """config/territory.csv, zones.yaml and commune_changes.csv."""
        return self._load("territory", load_territory)

    def indicators(self) -> IndicatorSet:
        """config/indicators.yaml."""
        return self._load("indicators", load_indicators)

    def study(self) -> Study:
        """config/study.yaml."""
        return self._load("study", load_study)

    def policy(self) -> Policy:
        """config/disclosure.yaml (the secrecy policy)."""
        return self._load("policy", load_policy)

    def report_config(self):
        """config/report.yaml (the reports' names, symbols, notes and map settings)."""
        from pipeline.reports.context import load_report_config  # the reports need the resources, not the reverse

        return self._load("report", load_report_config)  # through its model (pipeline.config_models.report)


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
