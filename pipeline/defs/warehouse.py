"""The indicator warehouse: staging tables -> confidential.indicators, in DuckDB SQL.

Chain (group `warehouse`):

    stg_<source> (ingest) -> core_indicator_inputs -> core_indicators -> core_indicators_evolution
                                    ^ check caf_aggregates_match_communes (warning, non-blocking)

The aggregation rules live in `pipeline/sql/*.sql`, parameterised by the definitions of
`config/indicators.yaml` (loaded by `pipeline.indicators`) registered as small temporary
tables. The functions taking a DuckDB connection hold the logic and are testable
without Dagster; the assets only open the warehouse and call them.

Confidentiality: nothing here puts a value of the data in Dagster metadata or logs;
only counts, zone codes, indicator ids, years and hashes.
"""

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from pipeline.catalog import Catalog, load_catalog
from pipeline.errors import PipelineError
from pipeline.indicators import IndicatorSet, load_indicators
from pipeline.resources import WAREHOUSE_POOL, ProjectResource, WarehouseResource, transaction
from pipeline.table_writer import write_query
from pipeline.tables import (
    DEFINITIONS_TABLE,
    EVOLUTION_TABLE,
    INDICATORS_TABLE,
    INPUTS_TABLE,
    WIDE_VIEW_PATTERN,
    column_schema_metadata,
    described_schema,
)
from pipeline.territory import Territory, infra_zones

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
GROUP = "warehouse"
LEVELS = ("commune", "rpe", "epci")

WIDE_VIEWS = {level: WIDE_VIEW_PATTERN.replace("*", level) for level in LEVELS}
STAGING_COLUMNS = ("year", "level", "zone_code", "measure", "value", "flag")


class WarehouseBuildError(PipelineError, RuntimeError):
    pass


def read_sql(name: str) -> str:
    return (SQL_DIR / name).read_text(encoding="utf-8")


def staging_asset_key(source: str) -> dg.AssetKey:
    """The Dagster asset that writes staging.<source>."""
    return dg.AssetKey(f"stg_{source}")


# ---- preparing the temporary tables the SQL reads ---------------------------------


def _temp_table(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> None:
    con.register("_tmp_frame", frame)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _tmp_frame")
    finally:
        con.unregister("_tmp_frame")


def register_definitions(con: duckdb.DuckDBPyConnection, indicators: IndicatorSet) -> None:
    """indicator_defs, indicator_years, indicator_levels, indicator_measures as temporary tables."""
    _temp_table(con, "indicator_defs", indicators.defs_frame())
    _temp_table(con, "indicator_years", indicators.years_frame())
    _temp_table(con, "indicator_levels", indicators.levels_frame())
    _temp_table(con, "indicator_measures", indicators.measures_frame())


def register_zones(con: duckdb.DuckDBPyConnection, zones: pd.DataFrame) -> None:
    """indicator_zones (level, zone_code, zone_name, parent_code) as a temporary table."""
    frame = zones[["level", "zone_code", "zone_name", "parent_code"]].astype("string")
    below = frame["level"].isin(set(frame["level"]) - set(LEVELS))
    if below.any() and not frame.loc[below, "parent_code"].isin(frame.loc[frame["level"] == "commune", "zone_code"]).all():
        raise WarehouseBuildError("zones: a zone below the commune has no commune of the territory as parent")
    bad = sorted(set(frame.loc[~below, "level"]) - set(LEVELS))
    if bad:
        raise WarehouseBuildError(f"zones: unknown level(s) {bad}")
    if frame.duplicated(["level", "zone_code"]).any():
        raise WarehouseBuildError("zones: a zone code appears twice at the same level")
    _temp_table(con, "indicator_zones", frame)


def _staging_tables(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    rows = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'staging'"
    ).fetchall()
    tables: dict[str, set[str]] = {}
    for table, column in rows:
        tables.setdefault(table, set()).add(column)
    return tables


def register_staging(con: duckdb.DuckDBPyConnection, indicators: IndicatorSet) -> None:
    """staging_inputs: the rows of staging.<source> the indicators need, in one view.

    Fails when a staging table the definitions read is absent or lacks a column; a table
    read only below the commune (the IRIS: no file of them in raw/) may be absent.
    """
    tables = _staging_tables(con)
    communal = {i.source for i in indicators.indicators if i.communal} | {indicators.allocataires_source}
    parts = []
    for source in indicators.sources:
        if source not in tables and source not in communal:
            continue
        if source not in tables:
            raise WarehouseBuildError(
                f"staging.{source} does not exist: materialize {staging_asset_key(source).to_user_string()} first"
            )
        missing = sorted(set(STAGING_COLUMNS) - tables[source])
        if missing:
            raise WarehouseBuildError(f"staging.{source} lacks column(s) {missing}")
        parts.append(
            f"""SELECT '{source}' AS source, CAST(s.year AS INTEGER) AS year, s.level, s.zone_code,
                       s.measure, CAST(s.value AS DOUBLE) AS value, s.flag
                FROM staging.{source} s
                JOIN (SELECT DISTINCT source, measure, year FROM indicator_measures) m
                  ON m.source = '{source}' AND m.measure = s.measure AND m.year = CAST(s.year AS INTEGER)"""
        )
    con.execute("CREATE OR REPLACE TEMP VIEW staging_inputs AS " + "\nUNION ALL\n".join(parts))


@dataclass
class StagingReport:
    """What the staging tables look like, in counts and codes only."""

    rows: int = 0
    unknown_zones: list[str] = field(default_factory=list)  # "level:code" not in the territory
    absent_source_years: list[str] = field(default_factory=list)  # "source year" with no row
    inconsistent_flags: int = 0  # reported without value, or a value with another flag

    def warnings(self) -> list[str]:
        out = []
        if self.unknown_zones:
            out.append(
                f"{len(self.unknown_zones)} zone code(s) of staging are not in the territory and are "
                f"ignored: {', '.join(self.unknown_zones[:20])}"
            )
        if self.absent_source_years:
            out.append(
                "no staging row for: " + ", ".join(self.absent_source_years)
                + " (those indicator-years are not_available; materialize the staging partitions)"
            )
        if self.inconsistent_flags:
            out.append(
                f"{self.inconsistent_flags} staging row(s) have a value inconsistent with their flag; "
                "they are read as unknown (reported without value) or as blank (value with a blank flag)"
            )
        return out


def inspect_staging(con: duckdb.DuckDBPyConnection) -> StagingReport:
    """Checks on staging_inputs: duplicates fail; unknown zones, absent years are reported."""
    dups = con.execute(
        """SELECT source, year, level, zone_code, measure FROM staging_inputs
           GROUP BY ALL HAVING count(*) > 1 ORDER BY ALL LIMIT 20"""
    ).fetchall()
    if dups:
        keys = ", ".join(f"{s} {y} {lvl}:{z} {m}" for s, y, lvl, z, m in dups)
        raise WarehouseBuildError(f"staging has several rows for one zone, measure and year: {keys}")
    report = StagingReport()
    report.rows = con.execute("SELECT count(*) FROM staging_inputs").fetchone()[0]
    report.unknown_zones = [
        f"{lvl}:{code}"
        for lvl, code in con.execute(
            """SELECT DISTINCT s.level, s.zone_code FROM staging_inputs s
               ANTI JOIN indicator_zones z ON z.level = s.level AND z.zone_code = s.zone_code
               ORDER BY ALL"""
        ).fetchall()
    ]
    report.absent_source_years = [
        f"{src} {year}"
        for src, year in con.execute(
            """SELECT DISTINCT m.source, m.year FROM indicator_measures m
               ANTI JOIN staging_inputs s ON s.source = m.source AND s.year = m.year
               ORDER BY ALL"""
        ).fetchall()
    ]
    report.inconsistent_flags = con.execute(
        """SELECT count(*) FROM staging_inputs
           WHERE (flag = 'reported' AND value IS NULL) OR (flag <> 'reported' AND value IS NOT NULL)"""
    ).fetchone()[0]
    return report


def staged_infra_zones(
    con: duckdb.DuckDBPyConnection, territory: Territory, indicators: IndicatorSet, catalog: Catalog | None = None
) -> pd.DataFrame:
    """The zones below the commune (IRIS) of the territory, from the staging tables the
    indicators read at those levels (`below_commune` in config/indicators.yaml), in the
    years they read them: level, zone_code, zone_name, parent_code (`infra_zones`).

    Names come from the raw copy of each year's file where its vintage maps a column to
    `nom_zone` (LIBGEO until 2018), the latest year first; else the code. Nothing when no
    level below the commune is listed in config/zones.yaml, or no such file was ingested."""
    levels = sorted(set(indicators.below_commune_levels) & territory.infra_communal_levels)
    if not levels:
        return infra_zones(pd.DataFrame(), territory)
    catalog = catalog or load_catalog()
    wanted = indicators.measures_frame()
    wanted = wanted[wanted["zone_group"].isin(levels)]
    tables = _staging_tables(con)
    raw = {t for (t,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw'").fetchall()}
    parts = []
    for source_id, years in wanted.groupby("source")["year"]:
        source = catalog.sources.get(source_id)
        if source_id not in tables or source is None:
            continue
        spec = catalog.level(source.zone_level)
        years = sorted({int(y) for y in years})
        rows = con.execute(
            f"SELECT DISTINCT CAST(year AS INTEGER) AS year, level, zone_code FROM staging.{source_id} "
            f"WHERE level IN ({', '.join('?' * len(levels))}) AND CAST(year AS INTEGER) IN "
            f"({', '.join(map(str, years))})", levels,
        ).df()
        names = []
        for year in years:
            vintage = source.vintages.get(year)
            label = vintage.label_of if vintage else {}
            if f"{source_id}_{year}" in raw and label.get("nom_zone") and label.get("code_zone"):
                try:
                    names.append(con.execute(
                        f'SELECT DISTINCT {year} AS year, "{label["code_zone"]}" AS zone_code, '
                        f'"{label["nom_zone"]}" AS zone_name FROM raw.{source_id}_{year}').df())
                except duckdb.Error:  # a raw copy without the column: the code stands for the name
                    pass
        if names:
            rows = rows.merge(pd.concat(names, ignore_index=True), on=["year", "zone_code"], how="left")
        rows["parent_code"] = rows["zone_code"].map(spec.parent)
        parts.append(rows.sort_values("year"))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return infra_zones(frame, territory)


def territory_zones(
    con: duckdb.DuckDBPyConnection, indicators: IndicatorSet, territory: Territory, catalog: Catalog
) -> pd.DataFrame:
    """The zones the warehouse computes: the territory's, and the IRIS of its communes
    found in the staging tables (`staged_infra_zones`)."""
    return territory.zones(staged_infra_zones(con, territory, indicators, catalog))


# ---- building the tables ----------------------------------------------------------


def build_indicator_inputs(
    con: duckdb.DuckDBPyConnection, indicators: IndicatorSet, zones: pd.DataFrame
) -> StagingReport:
    """Write confidential.indicator_inputs (measures per zone and year) in one transaction."""
    register_definitions(con, indicators)
    register_zones(con, zones)
    register_staging(con, indicators)
    report = inspect_staging(con)
    with transaction(con):
        write_query(con, INPUTS_TABLE, read_sql("indicator_inputs.sql"))
    return report


def wide_view_sql(indicators: IndicatorSet, level: str) -> str:
    """A view of one level: one row per zone, one column per indicator and year."""
    columns = [
        f"""max(allocataires) FILTER (WHERE year = {year}) AS "allocataires_{year}\""""
        for year in indicators.years
    ]
    for ind in indicators.indicators:
        for year in ind.years:
            columns.append(
                f"""max(value) FILTER (WHERE indicator = '{ind.id}' AND year = {year}) AS "{ind.id}_{year}\""""
            )
    return (
        f"CREATE OR REPLACE VIEW {WIDE_VIEWS[level]} AS\n"
        f"SELECT zone_code, zone_name, parent_code,\n    " + ",\n    ".join(columns) + "\n"
        f"FROM {INDICATORS_TABLE}\nWHERE level = '{level}'\n"
        "GROUP BY zone_code, zone_name, parent_code\nORDER BY zone_code"
    )


def build_indicators(con: duckdb.DuckDBPyConnection, indicators: IndicatorSet) -> None:
    """Write confidential.indicators, confidential.indicator_definitions and the wide
    views from confidential.indicator_inputs, in one transaction."""
    register_definitions(con, indicators)
    with transaction(con):
        write_query(con, INDICATORS_TABLE, read_sql("indicators.sql"))
        write_query(
            con, DEFINITIONS_TABLE,
            """SELECT d.* EXCLUDE (alloc_source, alloc_measure), list(y.year ORDER BY y.year) AS years
               FROM indicator_defs d JOIN indicator_years y USING (indicator)
               GROUP BY ALL ORDER BY d.indicator_order""",
        )
        for level in LEVELS:
            con.execute(wide_view_sql(indicators, level))
        _assert_complete_grid(con)


def _assert_complete_grid(con: duckdb.DuckDBPyConnection) -> None:
    """Every zone has exactly one row per indicator and year of the indicator, no more."""
    problems = con.execute(
        f"""WITH expected AS (
                SELECT z.level, z.zone_code, y.indicator, y.year
                FROM (SELECT DISTINCT level, zone_code FROM {INPUTS_TABLE}) z
                JOIN indicator_levels y
                  ON y.zone_group = CASE WHEN z.level IN ('commune', 'rpe', 'epci') THEN 'commune' ELSE z.level END
            ),
            actual AS (SELECT level, zone_code, indicator, year, count(*) AS n FROM {INDICATORS_TABLE} GROUP BY ALL)
            SELECT
                (SELECT count(*) FROM expected ANTI JOIN actual USING (level, zone_code, indicator, year)),
                (SELECT count(*) FROM actual ANTI JOIN expected USING (level, zone_code, indicator, year)),
                (SELECT count(*) FROM actual WHERE n > 1)"""
    ).fetchone()
    if any(problems):
        missing, extra, duplicated = problems
        raise WarehouseBuildError(
            f"{INDICATORS_TABLE}: {missing} missing, {extra} unexpected, {duplicated} duplicated "
            "(zone, indicator, year) rows"
        )


def build_evolution(con: duckdb.DuckDBPyConnection, indicators: IndicatorSet) -> None:
    """Write confidential.indicators_evolution from confidential.indicators."""
    register_definitions(con, indicators)
    with transaction(con):
        write_query(con, EVOLUTION_TABLE, read_sql("indicators_evolution.sql"))


def iris_not_adding_up(con: duckdb.DuckDBPyConnection, tolerance: float = 0.001) -> list[str]:
    """Communes whose IRIS, all known, do not add up to the commune's own figure of the
    same indicator and year (the commune keeps its source, e.g. the BCA): "code indicator
    year", never a value. The secrecy stage treats the IRIS as adding up to their commune
    (a reader may assume they do); where they do not, masking an IRIS may leave published
    figures that contradict each other, which stops the masking: ask the producer."""
    rows = con.execute(
        f"""SELECT c.zone_code, c.indicator, c.year
            FROM {INDICATORS_TABLE} c
            JOIN {INDICATORS_TABLE} i
              ON i.level = 'iris' AND i.parent_code = c.zone_code AND i.indicator = c.indicator AND i.year = c.year
            WHERE c.level = 'commune'
            GROUP BY c.zone_code, c.indicator, c.year, c.value, c.status
            HAVING c.status = 'ok' AND bool_and(i.status = 'ok') AND abs(sum(i.value) - c.value) > ?
            ORDER BY ALL""",
        [tolerance],
    ).fetchall()
    return [f"{code} {indicator} {year}" for code, indicator, year in rows]


def find_reconciliation_mismatches(
    con: duckdb.DuckDBPyConnection, indicators: IndicatorSet
) -> tuple[int, pd.DataFrame]:
    """(cells compared, mismatching cells) between the producer's zone figures and the
    bottom-up sums. The frame holds codes only: level, zone_code, source, measure, year,
    indicators (the indicator ids using the measure)."""
    n_compared = con.execute(read_sql("reconciliation_compared.sql")).fetchone()[0]
    mismatches = con.execute(
        read_sql("reconciliation.sql"), {"tolerance": indicators.reconciliation_tolerance}
    ).df()
    mismatches["indicators"] = [
        indicators.indicators_using(src, m) for src, m in zip(mismatches["source"], mismatches["measure"])
    ]
    return int(n_compared), mismatches


# ---- metadata (counts, codes and hashes only) ---------------------------------------


def _counts(con: duckdb.DuckDBPyConnection, table: str, column: str) -> dict[str, int]:
    return {str(k): int(n) for k, n in con.execute(f"SELECT {column}, count(*) FROM {table} GROUP BY 1 ORDER BY 1").fetchall()}


def _content_hash(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """md5 of the whole table, to see whether a rebuild changed anything: the md5 of the
    sorted md5s of its rows (each row cast to text), so the same rows in any order give
    the same hash. Hashing each row first keeps 32 bytes a row in memory instead of the
    table's whole text (measured alone on the national indicator inputs, 2 million rows:
    0.7 GB instead of 5.7 GB, 3 times faster)."""
    (digest,) = con.execute(
        f"SELECT md5(coalesce(string_agg(h, '' ORDER BY h), '')) "
        f"FROM (SELECT md5(CAST(t AS VARCHAR)) AS h FROM {table} t)"
    ).fetchall()[0]  # the whole result read: the connection is free for what follows
    return digest


def _schema(con: duckdb.DuckDBPyConnection, table: str) -> dg.TableSchema:
    return described_schema(con, table)  # each column described from config/tables.yaml


def _table_metadata(con: duckdb.DuckDBPyConnection, table: str, count_columns: tuple[str, ...]) -> dict:
    meta: dict = {
        "dagster/table_name": table,
        "dagster/row_count": int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]),
        "dagster/column_schema": _schema(con, table),
        "content_md5": _content_hash(con, table),
    }
    for column in count_columns:
        meta[f"rows_by_{column}"] = dg.MetadataValue.json(_counts(con, table, column))
    return meta


# ---- Dagster assets -----------------------------------------------------------------

# The staging tables the definitions read, known when the code location loads: they make
# the lineage (each asset downstream of exactly the sources it reads).
_DECLARED = load_indicators()
_DECLARED_SOURCES = tuple(_DECLARED.sources)


def _current_indicators(project: ProjectResource) -> IndicatorSet:
    """The indicators of this run's configuration, if the graph loaded with the code location
    still holds every staging table they read."""
    indicators = project.indicators()
    extra = sorted(set(indicators.sources) - set(_DECLARED_SOURCES))
    if extra:
        raise WarehouseBuildError(
            f"config/indicators.yaml now reads staging source(s) {extra} that this code location did not "
            "declare as upstream: reload the code location"
        )
    return indicators


@dg.asset(
    automation_condition=dg.AutomationCondition.eager(),
    group_name=GROUP,
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    deps=[staging_asset_key(s) for s in _DECLARED_SOURCES],
    metadata=column_schema_metadata(INPUTS_TABLE),
)
def core_indicator_inputs(
    context: dg.AssetExecutionContext, project: ProjectResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Measures per commune, RPE and EPCI and year (confidential.indicator_inputs), summed from the staging tables of the CAF, Cnaf and INSEE files, with the CAF's zone figures where a commune is blank."""
    indicators = _current_indicators(project)
    with warehouse.connect() as con:
        zones = territory_zones(con, indicators, project.territory(), project.catalog())
        report = build_indicator_inputs(con, indicators, zones)
        for warning in report.warnings():
            context.log.warning(warning)
        meta = _table_metadata(con, INPUTS_TABLE, ("level", "status", "value_origin"))
    meta.update(
        {
            "staging_rows_read": report.rows,
            "staging_unknown_zones": dg.MetadataValue.json(report.unknown_zones),
            "staging_absent_source_years": dg.MetadataValue.json(report.absent_source_years),
            "staging_inconsistent_flags": report.inconsistent_flags,
        }
    )
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    automation_condition=dg.AutomationCondition.eager(),
    group_name=GROUP,
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    deps=[core_indicator_inputs],
    metadata=column_schema_metadata(INDICATORS_TABLE),
)
def core_indicators(
    context: dg.AssetExecutionContext, project: ProjectResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """The 12 indicators of the convention per level, zone and year (confidential.indicators, long; wide views confidential.indicators_wide_commune|rpe|epci), computed from core_indicator_inputs."""
    indicators = _current_indicators(project)
    with warehouse.connect() as con:
        build_indicators(con, indicators)
        meta = _table_metadata(con, INDICATORS_TABLE, ("level", "indicator", "status", "value_origin"))
        apart = iris_not_adding_up(con, indicators.reconciliation_tolerance)
    if apart:
        context.log.warning(
            f"{len(apart)} commune figure(s) differ from the sum of their IRIS (commune indicator year): "
            + ", ".join(apart[:20]) + ". The masking treats the IRIS as adding up to their commune: ask the producer."
        )
    meta["iris_not_adding_up"] = dg.MetadataValue.json(apart[:MAX_LISTED])
    meta["wide_views"] = dg.MetadataValue.json(list(WIDE_VIEWS.values()))
    meta["definitions_table"] = DEFINITIONS_TABLE
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    automation_condition=dg.AutomationCondition.eager(),
    group_name=GROUP,
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    deps=[core_indicators],
    metadata=column_schema_metadata(EVOLUTION_TABLE),
)
def core_indicators_evolution(project: ProjectResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Change from the first to the last year (absolute and %) of each count indicator per zone (confidential.indicators_evolution), computed from known values of core_indicators only."""
    indicators = _current_indicators(project)
    with warehouse.connect() as con:
        build_evolution(con, indicators)
        meta = _table_metadata(con, EVOLUTION_TABLE, ("level", "status"))
    return dg.MaterializeResult(metadata=meta)


MAX_LISTED = 500


@dg.asset_check(
    asset=core_indicator_inputs,
    blocking=False,
    name="caf_aggregates_match_communes",
    pool=WAREHOUSE_POOL,
    automation_condition=dg.AutomationCondition.eager(),
)
def caf_aggregates_match_communes(project: ProjectResource, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Where the CAF (or Cnaf) gives its own RPE / EPCI figure and every commune under it is known, the sum of the communes equals it; lists the disagreeing zones, indicators and years (never values)."""
    indicators = _current_indicators(project)
    with warehouse.connect(read_only=True) as con:
        n_compared, mismatches = find_reconciliation_mismatches(con, indicators)
    listed = [
        {
            "level": row.level,
            "zone_code": row.zone_code,
            "year": int(row.year),
            "source": row.source,
            "measure": row.measure,
            "indicators": list(row.indicators),
        }
        for row in mismatches.head(MAX_LISTED).itertuples(index=False)
    ]
    lines = [
        f"{d['zone_code']} {d['year']} {d['measure']} -> {', '.join(d['indicators'])}" for d in listed
    ]
    return dg.AssetCheckResult(
        passed=mismatches.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "cells_compared": n_compared,
            "mismatches": len(mismatches),
            "mismatched_zones": dg.MetadataValue.json(sorted(set(mismatches["zone_code"]))),
            "mismatched_indicators": dg.MetadataValue.json(
                sorted({i for ids in mismatches["indicators"] for i in ids})
            ),
            "mismatched_years": dg.MetadataValue.json(sorted({int(y) for y in mismatches["year"]})),
            "details": dg.MetadataValue.json(listed),
            "details_truncated": max(0, len(mismatches) - MAX_LISTED),
            "summary": dg.MetadataValue.md(
                "Zone figures of the producer that differ from the sum of their communes "
                "(zone, year, measure -> indicators). Ask the CAF.\n\n"
                + ("\n".join(f"- {line}" for line in lines) if lines else "None.")
            ),
        },
    )


defs = dg.Definitions(
    assets=[core_indicator_inputs, core_indicators, core_indicators_evolution],
    asset_checks=[caf_aggregates_match_communes],
)
