"""Ingest assets: every table of the convention's annex, from `raw/` to DuckDB.

Two assets per source table of `config/catalog.yaml`, both partitioned by the years
the catalog lists for it:
- `raw_<source>`: the faithful text copy of the table (every column, extra ones
  included, plus source row numbers) in `raw.<source>_<year>`, and the file's
  fingerprint in the ingest ledger `lineage.ingest_ledger`;
- `stg_<source>`: the canonical long table `staging.<source>`, validated against the
  pandera schema of `schemas/` before anything is written, so a bad file leaves the
  last good table in place and nothing downstream runs.

The logic lives in `pipeline.extract`, `pipeline.staging` and `pipeline.validation`;
this module only wires it into Dagster.
"""


import datetime as dt

import dagster as dg
import pandas as pd

from pipeline.catalog import CatalogError, Source, load_catalog
from pipeline.extract import IngestError, extract, fingerprint, locate
from pipeline.lifecycle import assert_ingest_allowed
from pipeline.resources import WAREHOUSE_POOL, WarehouseResource, transaction, write_rows, write_table
from pipeline.settings import project_paths
from pipeline.staging import stage
from pipeline.territory import TerritoryError, load_territory
from pipeline.validation import validate

LEDGER_TABLE = "lineage.ingest_ledger"
SCHEMA_CHECK = "schema_valide"


def raw_table_name(source: str, year: int | str) -> str:
    return f"raw.{source}_{year}"


def _failure(exc: Exception) -> dg.Failure:
    """A failure the UI shows as a message, without retrying a file that will not change."""
    return dg.Failure(description=str(exc), allow_retries=False)


def _column_schema(columns: dict[str, str]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns.items()])


STAGING_SCHEMA = _column_schema(
    {
        "source": "VARCHAR", "year": "INTEGER", "level": "VARCHAR", "zone_code": "VARCHAR",
        "measure": "VARCHAR", "value": "DOUBLE", "flag": "VARCHAR", "file_name": "VARCHAR",
        "sheet": "VARCHAR", "source_row": "INTEGER",
    }
)


def year_partitions(source_id: str) -> dg.DynamicPartitionsDefinition:
    """The years of one source: they grow with the files that arrive in raw/ (the file
    sensor and `python -m pipeline run` add them), within the years the catalog knows."""
    return dg.DynamicPartitionsDefinition(name=f"annees_{source_id}")


def build_ingest_assets(source: Source) -> list[dg.AssetsDefinition]:
    partitions = year_partitions(source.id)
    # the producer; owners, classification and articles come from config/governance.yaml
    tags = {"source": source.producer}
    raw_key, stg_key = f"raw_{source.id}", f"stg_{source.id}"

    @dg.asset(
        name=raw_key,
        group_name="raw",
        partitions_def=partitions,
        pool=WAREHOUSE_POOL,
        kinds={"csv" if all(v.file.lower().endswith(".csv") for v in source.vintages.values()) else "excel", "duckdb"},
        tags=tags,
        description=f"{source.title}: faithful text copy of the file the {source.producer} sent, "
        f"one table per year (raw.{source.id}_<year>), fingerprinted in the ingest ledger.",
        metadata={"catalog": "config/catalog.yaml", "source_id": source.id},
    )
    def raw_asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        assert_ingest_allowed()  # a closed or destroyed study refuses any new CAF data (convention art. 2, 7)
        year = int(context.partition_key)
        try:
            catalog = load_catalog()
            vintage = catalog.vintage(source.id, year)
            path, sheet = locate(project_paths().raw, vintage, catalog)
            table = extract(path, vintage, sheet)
            file_print = fingerprint(path)
        except (IngestError, CatalogError) as exc:
            context.log.error(str(exc))
            raise _failure(exc) from None
        for warning in table.warnings:
            context.log.warning(f"{table.file}: {warning}")
        ledger = pd.DataFrame(
            [
                {
                    "source": source.id,
                    "year": year,
                    "file_name": file_print.name,
                    "sheet": table.sheet,
                    "size_bytes": file_print.size,
                    "sha256": file_print.sha256,
                    "received_at": file_print.received_at.replace(tzinfo=None),
                    "ingested_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
                    "run_id": context.run_id,
                    "rows": len(table.frame),
                }
            ]
        ).astype({"sheet": "string", "file_name": "string", "sha256": "string", "run_id": "string"})
        target = raw_table_name(source.id, year)
        with warehouse.connect() as con, transaction(con):
            write_table(con, target, table.frame)
            write_rows(con, LEDGER_TABLE, ledger, "source = ? AND year = ?", [source.id, year])
        return dg.MaterializeResult(
            metadata={
                "file": file_print.name,
                "sheet": table.sheet or "",
                "sha256": file_print.sha256,
                "size_bytes": file_print.size,
                "header_row": table.header_row,
                "extra_columns": table.extra_columns,
                "notes_rows_skipped": table.notes_rows,
                "warnings": table.warnings,
                "dagster/row_count": len(table.frame),
                "dagster/table_name": target,
                "dagster/column_schema": _column_schema(
                    {c: ("INTEGER" if c == "_row" else "VARCHAR") for c in table.frame.columns}
                ),
            }
        )

    @dg.asset(
        name=stg_key,
        group_name="staging",
        partitions_def=partitions,
        pool=WAREHOUSE_POOL,
        deps=[raw_key],
        kinds={"pandas", "duckdb"},
        tags=tags,
        description=f"{source.title}: canonical measures per zone and year (staging.{source.id}), "
        "secret-at-source blanks flagged, validated with the pandera schema of schemas/.",
        check_specs=[
            dg.AssetCheckSpec(
                SCHEMA_CHECK,
                asset=stg_key,
                blocking=True,
                description=f"The {source.id} table passes its pandera schema (schemas/{source.id}.py); "
                "run before anything is written.",
            )
        ],
        metadata={"dagster/column_schema": STAGING_SCHEMA, "dagster/table_name": f"staging.{source.id}"},
    )
    def stg_asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        year = int(context.partition_key)
        try:
            catalog = load_catalog()
            territory = load_territory()
            vintage = catalog.vintage(source.id, year)
        except (CatalogError, TerritoryError) as exc:
            raise _failure(exc) from None
        with warehouse.connect() as con:
            try:
                raw = con.sql(f"SELECT * FROM {raw_table_name(source.id, year)}").df()
            except Exception:
                raise dg.Failure(
                    description=f"{raw_table_name(source.id, year)} does not exist: materialize {raw_key} first",
                    allow_retries=False,
                ) from None
        raw = raw.astype({c: "object" for c in raw.columns if c != "_row"}).where(raw.notna(), None)
        staged = stage(raw, vintage, catalog.source(source.id), catalog, territory)
        report = validate(staged, territory)
        for warning in report.warnings:
            context.log.warning(f"{report.file}: {warning}")
        if not report.passed:
            error = report.to_error()
            context.log.error(str(error))
            raise dg.Failure(description=str(error), metadata=report.metadata(), allow_retries=False)
        long = staged.long()
        with warehouse.connect() as con, transaction(con):
            write_rows(con, f"staging.{source.id}", long, "year = ?", [year])
        flags = long["flag"].value_counts()
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(long),
                "zones": len(staged.wide),
                "technical_rows_dropped": staged.technical_rows,
                "rows_of_other_years": staged.other_year_rows,
                "cells_reported": int(flags.get("reported", 0)),
                "cells_secret_at_source": int(flags.get("secret_at_source", 0)),
                "cells_missing": int(flags.get("missing", 0)),
                "measures": staged.measures,
            },
            check_results=[dg.AssetCheckResult(check_name=SCHEMA_CHECK, passed=True, metadata=report.metadata())],
        )

    return [raw_asset, stg_asset]


def all_ingest_assets() -> list[dg.AssetsDefinition]:
    return [asset for source in load_catalog().sources.values() for asset in build_ingest_assets(source)]


ingest_assets = all_ingest_assets()
