"""Ingest assets: every table of the convention's annex, from `raw/` to DuckDB.

Two assets per source table of `config/catalog.yaml`, both partitioned by the years
the catalog lists for it:
- `raw_<source>`: the faithful text copy of the table (every column, extra ones
  included, plus source row numbers) in `raw.<source>_<year>`, and the file's
  fingerprint in the ingest ledger `lineage.ingest_ledger`;
- `stg_<source>`: the canonical long table `staging.<source>`, validated against the
  pandera schema derived from the source's declaration in `config/catalog.yaml` before
  anything is written, so a bad file leaves the last good table in place and nothing
  downstream runs.

A run of the job `ingest_<source>` covers one year (the file sensor's runs) or several
(`python -m pipeline run` launches one run per source over the range of its years): each year still has its own
table, ledger row and materialization event, and a bad year fails the run before the
failing asset writes any year of it (an unreadable file: no raw table; a file breaking
its schema: the raw copies are written, as in a run of one year, but no staging year).

The logic lives in `pipeline.extract`, `pipeline.staging` and `pipeline.validation`;
this module only wires it into Dagster.
"""


import datetime as dt
import warnings

import dagster as dg
import pandas as pd

from pipeline.catalog import CatalogError, Source, load_catalog
from pipeline.extract import IngestError, extract, fingerprint, locate_year
from pipeline.lifecycle import assert_ingest_allowed
from pipeline.resources import WAREHOUSE_POOL, ProjectResource, WarehouseResource, transaction
from pipeline.staging import stage
from pipeline.table_writer import write_rows, write_table
from pipeline.tables import LEDGER_TABLE, STAGING_PATTERN, column_schema, raw_column_schema
from pipeline.territory import TerritoryError
from pipeline.validation import validate

# `ingest_<source>`: the job of one source's two assets over its years (`make run`, the file sensor)
INGEST_JOB_PREFIX = "ingest_"
SCHEMA_CHECK = "schema_valide"


def raw_table_name(source: str, year: int | str) -> str:
    return f"raw.{source}_{year}"


def _failure(exc: Exception) -> dg.Failure:
    """A failure the UI shows as a message, without retrying a file that will not change."""
    return dg.Failure(description=str(exc), allow_retries=False)


STAGING_SCHEMA = column_schema(STAGING_PATTERN)  # columns and their descriptions: config/tables.yaml


def year_partitions(source_id: str) -> dg.DynamicPartitionsDefinition:
    """The years of one source: they grow with the files that arrive in raw/ (the file
    sensor and `python -m pipeline run` add them), within the years the catalog knows."""
    return dg.DynamicPartitionsDefinition(name=f"annees_{source_id}")


def run_years(context: dg.AssetExecutionContext) -> list[int]:
    """The years of this run: one for a run of one partition (the file sensor's), all
    those of the range for a run over several (`python -m pipeline run`, a backfill)."""
    return [int(key) for key in context.partition_keys]


def _join(messages: list[str]) -> str:
    return "\n".join(messages)


def _check_metadata(reports: list) -> dict:
    """The schema check's metadata: one year's report as it is, or the years summed,
    each failure and warning prefixed with its year (counts and locations, no value)."""
    if len(reports) == 1:
        return reports[0].metadata()
    return {
        "years": [int(r.year) for r in reports],
        "rows_checked": sum(r.rows_checked for r in reports),
        "rules_broken": sum(len(r.failures) for r in reports),
        "rows_failed": sum(r.failed_rows for r in reports),
        "failures": [f"{r.year}: {f.describe()}" for r in reports for f in r.failures],
        "warnings": [f"{r.year}: {w}" for r in reports for w in r.warnings],
        "rows_outside_territory": sum(r.rows_outside_territory for r in reports),
        "absent_measures": [f"{r.year}: {m}" for r in reports for m in r.absent_measures],
    }


def build_ingest_assets(source: Source) -> list[dg.AssetsDefinition]:
    with warnings.catch_warnings():  # `backfill_policy` is marked beta in dagster 1.13
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _build_ingest_assets(source)


def _build_ingest_assets(source: Source) -> list[dg.AssetsDefinition]:
    partitions = year_partitions(source.id)
    # the producer; owners, classification and articles come from config/governance.yaml
    tags = {"source": source.producer}
    raw_key, stg_key = f"raw_{source.id}", f"stg_{source.id}"

    # A run may cover one year (the file sensor asks for one run per new file and year) or
    # several (`python -m pipeline run`, a backfill from the UI: one run per source, its years
    # as a partition range; `backfill_policy=single_run`). Either way every year keeps its own
    # raw table, ledger row and materialization event (metadata per partition), and each asset
    # writes all the years of the run in one transaction or none: a file that cannot be read
    # fails `raw_<source>` and nothing is written; a file that breaks its schema fails
    # `stg_<source>` (naming the file) and every staging year stays as it was.
    @dg.asset(
        name=raw_key,
        group_name="raw",
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL,
        kinds={"csv" if all(v.file.lower().endswith(".csv") for v in source.all_vintages) else "excel", "duckdb"},
        tags=tags,
        description=f"{source.title}: faithful text copy of the file the {source.producer} sent, "
        f"one table per year (raw.{source.id}_<year>), fingerprinted in the ingest ledger.",
        metadata={"catalog": "config/catalog.yaml", "source_id": source.id,
                  "dagster/column_schema": raw_column_schema(source)},
    )
    def raw_asset(
        context: dg.AssetExecutionContext, project: ProjectResource, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        assert_ingest_allowed()  # a closed or destroyed study refuses any new CAF data (convention art. 2, 7)
        years = run_years(context)
        try:
            catalog = project.catalog()
        except CatalogError as exc:
            context.log.error(str(exc))
            raise _failure(exc) from None
        extracted, errors, prints = {}, [], {}
        for year in years:
            try:
                path, sheet, vintage = locate_year(project.paths.raw, source.id, year, catalog)
                table = extract(path, vintage, sheet)
                for warning in table.warnings:
                    context.log.warning(f"{table.file}: {warning}")
                if path not in prints:  # a workbook holding several years is hashed once
                    prints[path] = fingerprint(path)
            except (IngestError, CatalogError) as exc:
                context.log.error(str(exc))
                errors.append(str(exc))
                continue
            extracted[year] = (table, prints[path])
        if errors:
            raise dg.Failure(description=_join(errors), allow_retries=False)
        ingested_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        with warehouse.connect() as con, transaction(con):
            for year, (table, file_print) in extracted.items():
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
                            "ingested_at": ingested_at,
                            "run_id": context.run_id,
                            "rows": len(table.frame),
                        }
                    ]
                ).astype({"sheet": "string", "file_name": "string", "sha256": "string", "run_id": "string"})
                write_table(con, raw_table_name(source.id, year), table.frame)
                write_rows(con, LEDGER_TABLE, ledger, "source = ? AND year = ?", [source.id, year])
        for year, (table, file_print) in extracted.items():
            context.add_asset_metadata(
                {
                    "file": file_print.name,
                    "sheet": table.sheet or "",
                    "sha256": file_print.sha256,
                    "size_bytes": file_print.size,
                    "header_row": table.header_row,
                    "extra_columns": table.extra_columns,
                    "notes_rows_skipped": table.notes_rows,
                    "rows_of_other_years_left_out": table.other_period_rows,
                    "warnings": table.warnings,
                    "dagster/row_count": len(table.frame),
                    "dagster/table_name": raw_table_name(source.id, year),
                    "dagster/column_schema": raw_column_schema(source, list(table.frame.columns)),
                },
                partition_key=str(year),
            )
        # Dagster records one materialization per year of the run, with that year's metadata.
        return dg.MaterializeResult()

    @dg.asset(
        name=stg_key,
        group_name="staging",
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL,
        deps=[raw_key],
        kinds={"pandas", "duckdb"},
        tags=tags,
        description=f"{source.title}: canonical measures per zone and year (staging.{source.id}), "
        "secret-at-source blanks flagged, validated with the pandera schema derived from config/catalog.yaml.",
        check_specs=[
            dg.AssetCheckSpec(
                SCHEMA_CHECK,
                asset=stg_key,
                blocking=True,
                description=f"The {source.id} table of every year of the run passes its pandera schema "
                "(derived from its declaration in config/catalog.yaml); run before anything is written.",
            )
        ],
        metadata={"dagster/column_schema": STAGING_SCHEMA, "dagster/table_name": f"staging.{source.id}"},
    )
    def stg_asset(
        context: dg.AssetExecutionContext, project: ProjectResource, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        years = run_years(context)
        try:
            catalog = project.catalog()
            territory = project.territory()
            for year in years:
                catalog.forms(source.id, year)
        except (CatalogError, TerritoryError) as exc:
            raise _failure(exc) from None
        raws = {}
        with warehouse.connect() as con:
            for year in years:
                try:
                    raws[year] = con.sql(f"SELECT * FROM {raw_table_name(source.id, year)}").df()
                except Exception:
                    raise dg.Failure(
                        description=f"{raw_table_name(source.id, year)} does not exist: materialize {raw_key} first",
                        allow_retries=False,
                    ) from None
        staged_years, reports = {}, []
        for year in years:
            raw = raws.pop(year)
            raw = raw.astype({c: "object" for c in raw.columns if c != "_row"}).where(raw.notna(), None)
            # the form of the year that was copied: the one whose file the raw copy names
            file_name = str(raw["_file"].iloc[0]) if len(raw) else ""
            vintage = catalog.form_of_file(source.id, year, file_name)
            staged = stage(raw, vintage, catalog.source(source.id), catalog, territory)
            report = validate(staged, territory, catalog)
            for warning in report.warnings:
                context.log.warning(f"{report.file}: {warning}")
            reports.append(report)
            staged_years[year] = staged
        failed = [r for r in reports if not r.passed]
        if failed:
            message = _join([str(r.to_error()) for r in failed])
            context.log.error(message)
            raise dg.Failure(description=message, metadata=_check_metadata(failed), allow_retries=False)
        longs = {year: staged.long() for year, staged in staged_years.items()}
        with warehouse.connect() as con, transaction(con):
            for year, long in longs.items():
                write_rows(con, f"staging.{source.id}", long, "year = ?", [year])
        for year, staged in staged_years.items():
            long = longs[year]
            flags = long["flag"].value_counts()
            context.add_asset_metadata(
                {
                    "dagster/row_count": len(long),
                    "zones": len(staged.wide),
                    "technical_rows_dropped": staged.technical_rows,
                    "rows_of_other_years": staged.other_year_rows,
                    "rows_outside_territory": staged.rows_outside_territory,
                    "rows_filtered_out": staged.rows_filtered,
                    "measures_absent": staged.absent,
                    "cells_reported": int(flags.get("reported", 0)),
                    "cells_secret_at_source": int(flags.get("secret_at_source", 0)),
                    "cells_missing": int(flags.get("missing", 0)),
                    "measures": staged.measures,
                },
                partition_key=str(year),
            )
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(check_name=SCHEMA_CHECK, passed=True, metadata=_check_metadata(reports))
            ],
        )

    return [raw_asset, stg_asset]


def ingest_job(source: Source):
    """The job that ingests one source: raw copy then validated staging, over one year or a range."""
    return dg.define_asset_job(
        f"{INGEST_JOB_PREFIX}{source.id}",
        selection=dg.AssetSelection.assets(f"raw_{source.id}", f"stg_{source.id}"),
        partitions_def=year_partitions(source.id),
        description=f"Ingest {source.title} ({source.producer}): raw copy and validated staging table, "
        "one year or a range of years per run.",
    )


_SOURCES = list(load_catalog().sources.values())
# one object per job: the file sensor targets these same jobs
INGEST_JOBS = [ingest_job(source) for source in _SOURCES]

defs = dg.Definitions(
    assets=[asset for source in _SOURCES for asset in build_ingest_assets(source)],
    jobs=INGEST_JOBS,
)
