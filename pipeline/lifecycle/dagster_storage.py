"""The one place that touches how Dagster stores things (the adapter of the destruction).

Dagster has no retention feature: deleting a run through its API removes the run's events,
but not the history cached per asset, nor what the database engine keeps of deleted rows.
What this module relies on beyond Dagster's public API is listed in `RELIES_ON` and checked
by `tests/test_lifecycle_storage.py`, which fails when a Dagster upgrade changes any of it:

- the event log's SQL tables (`SqlEventLogStorageTable`, `AssetCheckExecutionsTable`:
  `dagster._core.storage.event_log.schema`) and the run id of events recorded outside runs
  (`RUNLESS_RUN_ID`, `dagster._core.instance.utils`): check results of deleted runs and
  runless events of purged assets are deleted with SQL, as no public call does it;
- the SQLite storage's per-run shards (`path_for_shard`), its `run_connection` /
  `index_connection`, and the local compute log manager's folder (`_base_dir`) and
  `delete_logs`;
- the PostgreSQL storage's `postgres_url`, to open one connection of its own for VACUUM,
  CHECKPOINT and the WAL switch, and to query its tables in the residue scan.

Nothing else in `pipeline.lifecycle` imports `dagster._…` or writes SQL on Dagster's tables.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.instance.utils import RUNLESS_RUN_ID
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable

from pipeline.lifecycle.dates import iso
from pipeline.lifecycle.scanner import Sentinel, sentinel_patterns, walk_files
from pipeline.lifecycle.shredder import shred_file, shred_tree

# What this module relies on beyond the public API: (object, attribute or column) pairs.
RELIES_ON = {
    "event_logs table columns": ("SqlEventLogStorageTable", ("id", "run_id", "event", "asset_key")),
    "asset_check_executions table columns": ("AssetCheckExecutionsTable", ("run_id", "asset_key")),
    "runless run id": ("RUNLESS_RUN_ID", ""),
    "SQLite event log": ("SqliteEventLogStorage", ("path_for_shard", "run_connection", "index_connection")),
    "PostgreSQL event log": ("PostgresEventLogStorage", ("postgres_url", "run_connection", "index_connection")),
    "local compute logs": ("LocalComputeLogManager", ("_base_dir", "delete_logs")),
}

_RUN_EVENT_TYPES = {
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.ASSET_OBSERVATION,
    dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    dg.DagsterEventType.ASSET_FAILED_TO_MATERIALIZE,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
}

# Dagster's PostgreSQL tables whose rows the purge deletes or rewrites, and its key-value table
# (sensor cursors, free text): rebuilt by VACUUM FULL (a plain VACUUM leaves the bytes of dead
# rows in the table's pages until they are reused).
PG_PURGED_TABLES = (
    "event_logs", "asset_event_tags", "asset_keys", "asset_check_executions", "runs", "run_tags",
    "backfill_tags", "concurrency_slots", "pending_steps", "kvs",
)
MAX_WAL_ROUNDS = 80  # 80 segments of 16 MB: beyond any min_wal_size this project's server would use


def _event_asset_key(entry) -> dg.AssetKey | None:
    event = entry.dagster_event
    if event is None:
        return None
    key = event.asset_key
    if key is None:
        key = getattr(event.event_specific_data, "asset_key", None)
    return key


def _fetch_all(fetch, key: dg.AssetKey) -> list:
    """Every record of `fetch` (fetch_materializations / fetch_observations), newest first."""
    out, cursor = [], None
    while True:
        result = fetch(key, limit=10000, cursor=cursor)
        out.extend(result.records)
        if not result.has_more:
            return out
        cursor = result.cursor


def _stamp(timestamp: float | None) -> str:
    return iso(dt.datetime.fromtimestamp(timestamp, dt.timezone.utc)) if timestamp else ""


class DagsterStorage:
    """The instance's storage as the destruction sees it: SQLite files under DAGSTER_HOME,
    or a PostgreSQL database (plus compute logs and IO-manager files under DAGSTER_HOME)."""

    def __init__(self, instance: dg.DagsterInstance, home: Path):
        self.instance = instance
        self.home = home
        self.events = instance.event_log_storage
        self.postgres_url: str | None = getattr(self.events, "postgres_url", None)
        self.kind = "postgres" if self.postgres_url else "sqlite"

    # ---- reading -----------------------------------------------------------------------

    def runs_touching(self, keys: set[dg.AssetKey], exclude_run_ids: set[str]) -> list[dict]:
        """Every run that planned, materialized, observed, checked or read (a child of) one of `keys`."""
        out = []
        for record in self.instance.get_run_records():
            run = record.dagster_run
            if run.run_id in exclude_run_ids:
                continue
            touched = set(run.asset_selection or ()) | {c.asset_key for c in (run.asset_check_selection or ())}
            for entry in self.instance.all_logs(run.run_id, of_type=_RUN_EVENT_TYPES):
                key = _event_asset_key(entry)
                if key is not None:
                    touched.add(key)
            hit = sorted(k.to_user_string() for k in touched & keys)
            if hit:
                started = record.start_time or record.create_timestamp.timestamp()
                out.append({"run_id": run.run_id, "job_name": run.job_name, "status": run.status.value,
                            "started_at": _stamp(started), "assets": hit})
        return out

    def materialization_summary(self, key: dg.AssetKey) -> dict:
        if not self.instance.has_asset_key(key):
            return {}
        records = _fetch_all(self.instance.fetch_materializations, key)
        times = [r.timestamp for r in records]
        return {
            "materializations": len(records),
            "observations": len(_fetch_all(self.instance.fetch_observations, key)),
            "partitions": sorted({r.partition_key for r in records if r.partition_key}),
            "tables": sorted({
                str(r.asset_materialization.metadata["dagster/table_name"].value)
                for r in records
                if r.asset_materialization and "dagster/table_name" in r.asset_materialization.metadata
            }),
            "first_materialized_at": _stamp(min(times)) if times else "",
            "last_materialized_at": _stamp(max(times)) if times else "",
        }

    def latest_materializations(self, key: dg.AssetKey) -> dict[str | None, Any]:
        """The newest materialization record of each partition (None: unpartitioned)."""
        latest: dict[str | None, Any] = {}
        if self.instance.has_asset_key(key):
            for record in _fetch_all(self.instance.fetch_materializations, key):
                latest.setdefault(record.partition_key, record)  # newest first
        return latest

    def run_files(self, run_id: str) -> list[Path]:
        """The files holding a run's events (SQLite shard) and captured stdout/stderr."""
        files = []
        if hasattr(self.events, "path_for_shard"):
            shard = Path(self.events.path_for_shard(run_id))
            files += [p for p in (shard, shard.with_name(shard.name + "-wal"), shard.with_name(shard.name + "-shm"))
                      if p.exists()]
        log_dir = self._logs_base() / run_id
        if log_dir.exists():
            files += sorted(p for p in log_dir.rglob("*") if p.is_file())
        return files

    def io_manager_path(self, key: dg.AssetKey) -> Path:
        return self.home.joinpath("storage", *key.path)

    # ---- purging -----------------------------------------------------------------------

    def _logs_base(self) -> Path:
        return Path(getattr(self.instance.compute_log_manager, "_base_dir", self.home / "storage"))

    def delete_run(self, run_id: str) -> None:
        """The run, its events (through Dagster), then its shard and captured output overwritten and deleted."""
        shard_files = [p for p in self.run_files(run_id) if not p.is_relative_to(self._logs_base())]
        self.instance.delete_run(run_id)
        for path in shard_files:
            shred_file(path)
        log_dir = self._logs_base() / run_id
        if log_dir.exists():
            shred_tree(log_dir)
            manager = self.instance.compute_log_manager
            if hasattr(manager, "delete_logs"):
                manager.delete_logs(prefix=[run_id])

    def delete_check_executions(self, run_ids: list[str]) -> None:
        """Check results recorded by deleted runs (kept assets' checks included)."""
        if run_ids:
            with self.events.index_connection() as conn:
                conn.execute(AssetCheckExecutionsTable.delete().where(AssetCheckExecutionsTable.c.run_id.in_(run_ids)))

    def delete_runless_events(self, keys: set[dg.AssetKey]) -> int:
        """Events of `keys` recorded outside runs (from the UI or the API); how many."""
        keys_text = [k.to_string() for k in keys]
        if not keys_text:
            return 0
        with self.events.run_connection(RUNLESS_RUN_ID) as conn:
            result = conn.execute(
                SqlEventLogStorageTable.delete().where(SqlEventLogStorageTable.c.asset_key.in_(keys_text))
            )
            return int(result.rowcount or 0)

    def wipe_asset(self, key: dg.AssetKey) -> bool:
        if not self.instance.has_asset_key(key):
            return False
        self.instance.wipe_assets([key])
        return True

    def fail_run(self, run_id: str, message: str) -> bool:
        """Mark a run killed half-way as failed and free its concurrency slots."""
        run = self.instance.get_run_by_id(run_id)
        if run is None or run.status not in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING):
            return False
        self.instance.report_run_failed(run, message=message)
        try:
            self.events.free_concurrency_slots_for_run(run_id)
        except NotImplementedError:
            pass
        return True

    def run_is_live(self, run_id: str) -> bool:
        run = self.instance.get_run_by_id(run_id)
        return run is not None and run.status in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING)

    # ---- what the database engine keeps of deleted rows --------------------------------

    def compact(self, show) -> dict:
        """SQLite: every SQLite file under DAGSTER_HOME rebuilt (VACUUM) and its WAL truncated.
        PostgreSQL: VACUUM FULL of the purged tables, then CHECKPOINT and WAL switches until
        every WAL segment that held the deleted rows has been written over or removed."""
        if self.kind == "sqlite":
            done = []
            for path in sqlite_files(self.home):
                vacuum_sqlite(path)
                done.append(show(path))
            return {"storage": "sqlite", "sqlite_vacuumed": sorted(set(done))}
        return self._compact_postgres()

    @contextmanager
    def _pg(self):
        import sqlalchemy as sa

        engine = sa.create_engine(self.postgres_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()

    def _compact_postgres(self) -> dict:
        import sqlalchemy as sa

        out: dict[str, Any] = {"storage": "postgres", "vacuum_full": [], "refused": []}
        with self._pg() as conn:
            present = {t for (t,) in conn.execute(sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))}
            for table in PG_PURGED_TABLES:
                if table in present:
                    try:
                        conn.execute(sa.text(f'VACUUM (FULL, ANALYZE) "{table}"'))
                        out["vacuum_full"].append(table)
                    except sa.exc.DBAPIError as exc:
                        out["refused"].append(f"VACUUM FULL {table}: {_pg_error(exc)}")
            # each counted as done, or named as refused (a role without the right to CHECKPOINT or to
            # switch the WAL): the certificate says what happened, never what was meant to
            out["checkpoints"] = out["wal_switches"] = 0
            refused: set[str] = set()
            for statement, done in [("CHECKPOINT", "checkpoints"), ("SELECT pg_switch_wal()", "wal_switches")] * \
                    self._wal_rounds(conn) + [("CHECKPOINT", "checkpoints")]:
                if statement in refused:
                    continue
                try:
                    conn.execute(sa.text(statement))
                    out[done] += 1
                except sa.exc.DBAPIError as exc:
                    refused.add(statement)
                    out["refused"].append(f"{statement.removeprefix('SELECT ')}: {_pg_error(exc)}")
            out["server"] = self._server_facts(conn)
        return out

    def _wal_rounds(self, conn) -> int:
        """One switch per WAL segment on disk, plus two: a recycled segment keeps its old bytes
        until it is written again, and a switch writes the rest of the current segment over."""
        import sqlalchemy as sa

        try:
            segments = conn.execute(sa.text("SELECT count(*) FROM pg_ls_waldir()")).scalar_one()
        except sa.exc.DBAPIError:
            max_wal = conn.execute(
                sa.text("SELECT setting::bigint FROM pg_settings WHERE name = 'max_wal_size'")
            ).scalar_one()
            size = conn.execute(
                sa.text("SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'")
            ).scalar_one()
            segments = max_wal * (1 << 20) // size
        return min(int(segments) + 2, MAX_WAL_ROUNDS)

    def _server_facts(self, conn) -> dict:
        """What else may hold copies: WAL archiving, replication slots (the DBA's part)."""
        import sqlalchemy as sa

        facts = {}
        for name in ("server_version", "archive_mode", "wal_level"):
            facts[name] = conn.execute(sa.text(f"SHOW {name}")).scalar_one()
        try:
            facts["replication_slots"] = conn.execute(sa.text("SELECT count(*) FROM pg_replication_slots")).scalar_one()
        except sa.exc.DBAPIError:
            facts["replication_slots"] = "?"
        return facts

    # ---- the residue scan of the instance's database -----------------------------------

    def data_directory(self) -> Path | None:
        """The PostgreSQL cluster's folder, when the server tells it, this process can read it,
        and it is the server's own (its pg_control holds the server's system identifier: a
        remote server's path may exist here for another cluster)."""
        if self.kind != "postgres":
            return None
        import sqlalchemy as sa

        with self._pg() as conn:
            try:
                folder = conn.execute(sa.text("SHOW data_directory")).scalar_one()
                identifier = int(
                    conn.execute(sa.text("SELECT system_identifier FROM pg_control_system()")).scalar_one()
                )
            except sa.exc.DBAPIError:
                return None
        path = Path(folder)
        try:
            local = int.from_bytes((path / "global" / "pg_control").read_bytes()[:8], sys.byteorder)
        except OSError:
            return None
        return path if local == identifier and os.access(path, os.R_OK | os.X_OK) else None

    def scan_database(self, sentinels: list[Sentinel]) -> tuple[dict, list[dict]]:
        """PostgreSQL: every text, JSON and bytea column of every table of the instance's
        schema queried for every sentinel (as text and JSON-escaped, as Dagster writes it)."""
        if self.kind != "postgres":
            return {}, []
        import sqlalchemy as sa

        # every sentinel as text and JSON-escaped (how Dagster serializes events), one query per column
        origin: dict[str, str] = {}
        for sentinel in sentinels:
            for form, pattern in sentinel_patterns(sentinel.text).items():
                if form in ("utf-8", "json-ascii"):
                    origin.setdefault(pattern.decode("utf-8"), sentinel.origin)
        texts = sorted(origin)
        hits: dict[tuple[str, str], int] = {}
        with self._pg() as conn:
            columns = conn.execute(sa.text(
                "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
                "JOIN information_schema.tables t USING (table_schema, table_name) "
                "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' "
                "AND c.data_type IN ('text', 'character varying', 'json', 'jsonb', 'bytea', 'character') "
                "ORDER BY 1, 2")).fetchall()
            tables = len({t for t, _, _ in columns})
            for table, column, dtype in columns if texts else []:
                if dtype == "bytea":
                    sql = (f'SELECT convert_from(s.p, \'UTF8\'), count(*) FROM "{table}" t, unnest(:p) AS s(p) '
                           f'WHERE position(s.p IN t."{column}") > 0 GROUP BY 1')
                    values: Any = [x.encode("utf-8") for x in texts]
                else:
                    sql = (f'SELECT s.p, count(*) FROM "{table}" t, unnest(CAST(:p AS text[])) AS s(p) '
                           f'WHERE strpos(t."{column}"::text, s.p) > 0 GROUP BY 1')
                    values = texts
                for text, n in conn.execute(sa.text(sql), {"p": values}).fetchall():
                    key = (f"PostgreSQL :: {table}.{column}", origin[text])
                    hits[key] = hits.get(key, 0) + int(n)
        scope = {
            "what": f"base PostgreSQL de l'instance Dagster ({tables} tables)",
            "how": "requête SQL de chaque colonne texte, JSON et binaire de chaque table (texte et texte échappé JSON)",
            "tables": tables,
        }
        return scope, [{"path": p, "form": "texte (SQL)", "origin": o, "count": n}
                       for (p, o), n in sorted(hits.items())]


def _pg_error(exc) -> str:
    """The server's reason (first line), never the statement's parameters."""
    orig = getattr(exc, "orig", exc)
    return (str(getattr(orig, "pgerror", "") or orig.__class__.__name__).strip().splitlines() or ["?"])[0]


def sqlite_files(home: Path) -> list[Path]:
    out = []
    for path in walk_files([home]):
        try:
            with open(path, "rb") as handle:
                if handle.read(16) == b"SQLite format 3\x00":
                    out.append(path)
        except OSError:
            continue
    return out


def vacuum_sqlite(path: Path) -> None:
    """Rebuild a SQLite file so that freed pages keep nothing; empty its WAL."""
    import sqlite3

    con = sqlite3.connect(str(path), timeout=120, isolation_level=None)
    try:
        con.execute("PRAGMA busy_timeout = 120000")
        con.execute("VACUUM")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def serialize_metadata(metadata) -> str:
    return dg.serialize_value(dict(metadata))


def deserialize_metadata(text: str) -> dict:
    return dict(dg.deserialize_value(text))
