"""Disclosure assets: from the confidential indicators to the published table (art. 4).

    core_indicators -> core_masking -> out_indicators
                          ^ blocking check audit_secret_statistique

`core_masking` decides what may be published (`pipeline.disclosure.suppression`) and
writes the masking log and the candidate table, both confidential; the independent
audit (`pipeline.disclosure.audit`) reads only the candidate's published values, the
zones and the policy, and blocks publication on any finding; `out_indicators` then
writes `published.indicators`, the only table reports may read.

Metadata carry counts, hashes, versions and cell keys only, never a value.
"""

import datetime as dt

import dagster as dg
import duckdb
import pandas as pd

from pipeline.disclosure.audit import audit_published
from pipeline.disclosure.history import History, Release
from pipeline.disclosure.policy import PolicyError, check_against_indicators
from pipeline.disclosure.suppression import PUBLISHED_COLUMNS, MaskingError, mask
from pipeline.fingerprint import frame_fingerprint, table_fingerprint
from pipeline.frames import as_text, read_compact
from pipeline.releases import load_history
from pipeline.resources import WAREHOUSE_POOL, ProjectResource, WarehouseResource, transaction
from pipeline.table_writer import write_query, write_table
from pipeline.tables import (
    AUDIT_MEMO_TABLE,
    CANDIDATE_TABLE,
    MASKING_LOG_TABLE,
    MASKING_MEMO_TABLE,
    PUBLISHED_TABLE,
    column_names,
    column_schema,
    column_schema_metadata,
)
from pipeline.territory import infra_zones

# The tables (pipeline.tables): the candidate and the masking log, the memos of what the masking
# and the audit already decided by fingerprint (pipeline.disclosure.memo), the published table.
AUDIT_CHECK = "audit_secret_statistique"

PUBLISHED_SCHEMA = column_schema(PUBLISHED_TABLE)  # columns and their descriptions: config/tables.yaml


@dg.asset(
    automation_condition=dg.AutomationCondition.eager(),
    group_name="disclosure",
    deps=["core_indicators"],
    kinds={"duckdb", "pandas"},
    pool=WAREHOUSE_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            AUDIT_CHECK,
            asset="core_masking",
            blocking=True,
            description="Independent audit: from the published values only, no masked cell or sum of "
            "masked cells of a relation can be pinned or proven below the threshold (art. 4).",
        )
    ],
    metadata=column_schema_metadata(CANDIDATE_TABLE),
)
def core_masking(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: WarehouseResource):
    """Masking decisions on confidential.indicators (primary and secondary suppression, policy
    config/disclosure.yaml): the candidate published table and the internal masking log."""
    indicators = project.indicators()
    territory = project.territory()
    study = project.study()
    try:
        policy = project.policy()
    except PolicyError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    problems = check_against_indicators(policy, indicators)
    if problems:
        raise dg.Failure(description="config/disclosure.yaml: " + "; ".join(problems), allow_retries=False)
    with warehouse.connect(read_only=True) as con:
        confidential = read_compact(con, "SELECT * FROM confidential.indicators")
        memo = read_records(con, MASKING_MEMO_TABLE)
        releases = load_history(con) if policy.earlier_releases else []
    started = dt.datetime.now(dt.timezone.utc)
    try:
        # the zone tree: the territory's, and the IRIS the warehouse computed (children of their commune)
        zones = territory.zones(infra_zones(confidential, territory))
        # every earlier release of the study is part of what the reader knows (issue 22)
        history = earlier_releases(releases, zones, confidential, indicators, territory, policy)
        if history.corrections:
            context.log.warning(
                f"{history.corrections} figure(s) of the CAF's data differ from those behind an earlier release "
                "(a corrected file): the reader holds both; they are protected as two figures")
        # sub-problems already solved with the same cells, zones, policy and code are taken from the memo
        result = mask(confidential, zones, indicators, policy, territory.infra_communal_levels, memo=memo,
                      history=history)
    except MaskingError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    seconds = (dt.datetime.now(dt.timezone.utc) - started).total_seconds()

    candidate = result.published.assign(study_id=study.study_id)
    log = result.log.assign(
        policy_version=policy.version, policy_sha256=policy.sha256, run_id=context.run_id,
        masked_at=started.replace(tzinfo=None),
    )
    with warehouse.connect() as con, transaction(con):
        write_table(con, CANDIDATE_TABLE, candidate)
        write_table(con, MASKING_LOG_TABLE, log)
        write_records(con, MASKING_MEMO_TABLE, result.records)
    yield dg.MaterializeResult(
        metadata={
            "policy_version": policy.version,
            "policy_sha256": policy.sha256,
            "solver": "HiGHS (scipy.optimize.milp), audit rounds until clean",
            "rounds": result.rounds,
            "seconds": round(seconds, 2),
            **{f"cells_{k}": v for k, v in result.counts.items()},
            # independent (year, EPCI tree) sub-problems: solved, trivially safe, forced to end
            **{f"subproblems_{k}": v for k, v in result.subproblems.items()},
            # the earlier releases the table is protected against, and the figures corrected since
            "releases_known": len(history.releases),
            "figures_corrected_since_releases": history.corrections,
            "dagster/row_count": len(candidate),
            # the fingerprint of the published table (pipeline.fingerprint), the candidate's before the audit
            "candidate_sha256": frame_fingerprint(candidate),
        }
    )
    # The audit reads back what was stored; nothing of the masking is kept in memory beside it.
    del confidential, result, candidate, log
    with warehouse.connect(read_only=True) as con:
        stored = read_compact(con, f"SELECT * FROM {CANDIDATE_TABLE}")
        cleared = read_records(con, AUDIT_MEMO_TABLE)
    check, parts = _audit_check(stored, territory, indicators, policy, cleared, history)
    with warehouse.connect() as con, transaction(con):
        write_records(con, AUDIT_MEMO_TABLE, parts)
    yield check


def _audit_check(published, territory, indicators, policy, cleared, history=None
                 ) -> tuple[dg.AssetCheckResult, dict]:
    """The blocking audit: each (year, zone tree) part whose published rows, zones, policy and
    audit code are those of a part audited clean before is not audited again (`cleared`);
    against the union with every earlier release (`history`)."""
    audit = audit_published(published, territory.zones(infra_zones(published, territory)), indicators, policy,
                            cleared=cleared, history=history)
    return dg.AssetCheckResult(
        check_name=AUDIT_CHECK,
        passed=audit.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "masked_cells_checked": audit.cells_checked,
            "sums_checked": audit.groups_checked,
            "linear_programmes": audit.linear_programmes,
            "findings": len(audit.findings),
            # (year, zone tree) parts audited in this run, and those cleared by an earlier audit
            "parts_audited": audit.parts_audited,
            "parts_reused": audit.parts_reused,
            "releases_known": 0 if history is None else len(history.releases),
            "findings_detail": [f.describe() for f in audit.findings[:50]],
            "policy_version": policy.version,
            "policy_sha256": policy.sha256,
        },
    ), audit.parts


def earlier_releases(releases, zones, confidential, indicators, territory, policy) -> History:
    """The study's releases (`pipeline.releases.load_history`) as the reader of the next one
    holds them, named for today's zones and compared with today's CAF data."""
    return History.build(
        [Release(r.release_id, r.published, r.zones, r.rate_decimals, r.threshold, r.truth) for r in releases],
        zones, confidential, indicators, territory.code_changes, policy.rate_decimals,
        policy.threshold)


def read_records(con, table: str) -> dict[str, str]:
    """fingerprint -> record of a memo table; none before its first run."""
    try:
        rows = con.execute(f"SELECT fingerprint, record FROM {table}").fetchall()
    except duckdb.CatalogException:
        return {}
    return dict(rows)


def write_records(con, table: str, records: dict[str, tuple[int, str, str]]) -> None:
    """A memo table holds the records of the last run only: parts no longer there are forgotten."""
    frame = pd.DataFrame([(f, year, root, text) for f, (year, root, text) in records.items()],
                         columns=column_names(table))
    write_table(con, table, frame.astype({"fingerprint": "string", "year": "int32", "root": "string", "record": "string"}))


@dg.asset(
    automation_condition=dg.AutomationCondition.eager(),
    group_name="disclosure",
    deps=["core_masking"],
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    metadata={"dagster/table_name": PUBLISHED_TABLE, "dagster/column_schema": PUBLISHED_SCHEMA},
)
def out_indicators(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """published.indicators: the twelve indicators of the convention per commune, RPE and CABBALR,
    masked under article 4 and cleared by the audit; the only table reports read."""
    columns = ", ".join(PUBLISHED_COLUMNS + ["study_id"])
    with warehouse.connect() as con:
        with transaction(con):  # copied inside DuckDB: a national table never goes through pandas to be written
            write_query(con, PUBLISHED_TABLE, f"SELECT {columns} FROM {CANDIDATE_TABLE}")
        published = as_text(read_compact(con, f"SELECT * FROM {PUBLISHED_TABLE}"))
        fingerprint = table_fingerprint(con, PUBLISHED_TABLE)
    status = published["status"].value_counts()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(published),
            "published": int(status.get("published", 0)),
            "masked": int(status.get("masked", 0)),
            "not_available": int(status.get("not_available", 0)),
            "study_id": str(published["study_id"].iloc[0]) if len(published) else "",
            # the fingerprint the reports, the manifest and the destruction certificate show
            "fingerprint": fingerprint,
        }
    )


defs = dg.Definitions(assets=[core_masking, out_indicators])
