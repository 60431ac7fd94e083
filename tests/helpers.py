"""Helpers shared by tests: run assets on an ephemeral instance (a selection, or the jobs
`make run` launches), edit sample workbooks."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from pathlib import Path

import dagster as dg
import duckdb
import openpyxl


def materialize(selection: list[str], partition_key: str | None = None, instance=None) -> dg.ExecuteInJobResult:
    from pipeline.definitions import defs
    from pipeline.launch import release_slots_of_dead_runs, run_tags

    instance = instance or dg.DagsterInstance.ephemeral()
    release_slots_of_dead_runs(instance)  # as pipeline.launch does before each run
    if partition_key is not None:  # a year partition must exist before it runs
        graph = defs.resolve_asset_graph()
        for key in selection:
            pdef = graph.get(dg.AssetKey.from_user_string(key)).partitions_def
            if isinstance(pdef, dg.DynamicPartitionsDefinition) and not instance.has_dynamic_partition(
                pdef.name, partition_key
            ):
                instance.add_dynamic_partitions(pdef.name, [partition_key])
    return dg.materialize(
        list(defs.assets) + list(defs.asset_checks or []),
        selection=selection,
        partition_key=partition_key,
        resources=defs.resources,
        instance=instance,
        tags=run_tags(),
        raise_on_error=False,
    )


def failure_message(result: dg.ExecuteInJobResult) -> str:
    messages = [
        e.step_failure_data.error.message
        for e in result.all_events
        if e.is_step_failure and e.step_failure_data and e.step_failure_data.error
    ]
    return "\n".join(messages)


def query(project: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(project / "warehouse" / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def edit_workbook(path: Path, sheet: str, edit) -> None:
    """Apply `edit(worksheet)` to a sample workbook and save it in place."""
    workbook = openpyxl.load_workbook(path)
    edit(workbook[sheet])
    workbook.save(path)


def find_row(worksheet, code: str) -> int:
    """Row number of the zone `code` in the first column holding it."""
    for row in worksheet.iter_rows():
        for cell in row:
            if cell.value is not None and str(cell.value).split(".")[0] == code:
                return cell.row
    raise AssertionError(f"zone {code} not found")


def header_columns(worksheet, header_row: int) -> dict[str, int]:
    return {str(c.value): c.column for c in worksheet[header_row] if c.value is not None}


def materialize_all(instance=None) -> list[str]:
    """What `make run` does, through the same jobs of the definitions (`pipeline.launch.run_all`):
    each source's ingest job over its years, then the refresh job. The failed runs' labels
    and messages."""
    from pipeline.launch import failure_messages, run_all

    instance = instance or dg.DagsterInstance.ephemeral()
    return [
        "\n".join([launched.label, *failure_messages(launched.result)])
        for launched in run_all(instance)
        if not launched.success
    ]


def published_and_confidential(warehouse: Path):
    """published.indicators and confidential.indicators of a warehouse, as DataFrames."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return (con.sql("SELECT * FROM published.indicators").df(),
                con.sql("SELECT * FROM confidential.indicators").df())
    finally:
        con.close()


def stop_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """End the process group a test started (`start_new_session=True`: a webserver, a daemon and
    their code servers): SIGTERM, then SIGKILL if it lingers."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
