"""A blocking check of each table asset's shape, derived from `config/tables.yaml`, not written by hand.

For every asset of the stages below whose table (`dagster/table_name`) is declared there, one
check `forme_declaree`: the stored table has the declared columns with the declared types,
its primary key is unique and its coded columns hold only their allowed values
(`pipeline.table_writer.table_problems`). Blocking: a table that breaks its declaration stops
what reads it in the same run (the published table's, the reports).

Left out: the partitioned assets (raw copies, staging tables; a check is not partitioned in
Dagster, and the table writer holds every year's write to the declaration already) and
views. A failure names the table, the column and a count of rows, never a value.
"""

import dagster as dg

from pipeline.defs import disclosure, ingest, releases, warehouse
from pipeline.resources import WAREHOUSE_POOL, WarehouseResource
from pipeline.table_writer import table_problems
from pipeline.tables import is_declared, is_view, primary_key

SHAPE_CHECK = "forme_declaree"
# the stages whose assets write warehouse tables
TABLE_STAGES = (ingest, warehouse, disclosure, releases)


def table_assets(definitions: list[dg.Definitions]) -> dict[dg.AssetKey, str]:
    """asset key -> the declared table it writes, for each unpartitioned asset writing a table."""
    out = {}
    for defs in definitions:
        for asset in defs.assets or []:
            for spec in getattr(asset, "specs", []):
                table = str((spec.metadata or {}).get("dagster/table_name") or "")
                if table and spec.partitions_def is None and is_declared(table) and not is_view(table):
                    out[spec.key] = table
    return out


def shape_check(key: dg.AssetKey, table: str) -> dg.AssetChecksDefinition:
    """The blocking check that the stored `table` of asset `key` holds to its declaration."""
    key_text = ", ".join(primary_key(table)) or "none"

    @dg.asset_check(
        asset=key,
        name=SHAPE_CHECK,
        blocking=True,
        pool=WAREHOUSE_POOL,
        automation_condition=dg.AutomationCondition.eager(),
        description=f"{table} as config/tables.yaml declares it: its columns and types, its primary key "
        f"({key_text}) unique, its coded columns within their allowed values.",
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect(read_only=True) as con:
            try:
                problems = [str(p) for p in table_problems(con, table)]
            except Exception as exc:  # the table is absent or unreadable: the check says so, it does not crash
                problems = [f"{table} cannot be read ({type(exc).__name__})"]
        return dg.AssetCheckResult(
            passed=not problems,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"table": table, "primary_key": key_text, "problems": dg.MetadataValue.json(problems)},
        )

    return _check


def shape_checks(definitions: list[dg.Definitions]) -> list[dg.AssetChecksDefinition]:
    return [shape_check(key, table) for key, table in table_assets(definitions).items()]


defs = dg.Definitions(asset_checks=shape_checks([stage.defs for stage in TABLE_STAGES]))
