"""The publication history: a release is an explicit, immutable act.

`published.indicators` is rebuilt by every refresh; what went out to the committees and the
CAF is what was *released*. A release (`make release`, the op job `release`) appends, in one
transaction:

- `published.releases`: one row per release (R1, R2, … in order): the study, the date (UTC),
  the secrecy policy (version, hash, threshold, rate decimals), the fingerprint of the
  published table (`pipeline.fingerprint`), the hash of the zone tree released, counts, the
  operator and note, and the files of `reports/` that went out (name, sha256);
- `published.release_indicators`: the rows of published.indicators as released;
- `published.release_zones`: the zone tree the masking and the audit use,
  `territory.zones(infra_zones(published, territory))` (the IRIS included when present);
- `confidential.release_values`: the confidential truth behind the release (a copy of
  `confidential.indicators`), for the masking to know which hidden figures changed since.
  Confidential: the destruction drops it with its schema; the published history stays.

A released row is never rewritten or deleted: the tables are only ever appended to, and a
release is refused if the history no longer matches its own fingerprints.

`record_release` refuses (`ReleaseError`) when the study is closed, when published.indicators
does not exist, when it is the last release's table already, or when it is not the table the
last audit cleared (`confidential.published_candidate`). `load_history` gives every release
back as a `ReleaseRecord`: the interface the masking consumes.

Messages and metadata hold ids, counts and hashes only: never a value of the data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.fingerprint import frame_fingerprint, table_digest
from pipeline.frames import as_text, read_compact
from pipeline.resources import transaction
from pipeline.table_writer import check_table, create_table
from pipeline.tables import (
    CANDIDATE_TABLE,
    INDICATORS_TABLE,
    PUBLISHED_TABLE,
    RELEASE_INDICATORS_TABLE,
    RELEASE_VALUES_TABLE,
    RELEASE_ZONES_TABLE,
    RELEASES_TABLE,
    column_names,
    primary_key,
)
from pipeline.territory import infra_zones

RELEASE_TABLES = (RELEASES_TABLE, RELEASE_INDICATORS_TABLE, RELEASE_ZONES_TABLE, RELEASE_VALUES_TABLE)
# what the masking wrote and the audit cleared (the candidate), and its source
CONFIDENTIAL_TABLE = INDICATORS_TABLE

ZONE_COLUMNS = ["level", "zone_code", "zone_name", "parent_code"]
TRUTH_COLUMNS = [*primary_key(PUBLISHED_TABLE), "value", "numerator", "denominator"]
_RELEASE_ID = re.compile(r"R([1-9][0-9]*)")


class ReleaseError(PipelineError, ValueError):
    """A release refused: the message says why and what to do (ids, counts, hashes only)."""


@dataclass(frozen=True, eq=False)
class ReleaseRecord:
    """One release of the history, as the masking reads it."""

    release_id: str
    released_at: dt.datetime  # UTC
    policy_version: str
    policy_sha256: str
    threshold: int
    rate_decimals: int
    referential_sha256: str
    table_fingerprint: str
    published: pd.DataFrame  # the released rows: the columns of published.indicators
    zones: pd.DataFrame  # level, zone_code, zone_name, parent_code
    truth: pd.DataFrame  # TRUTH_COLUMNS; empty once the confidential schema is destroyed
    study_id: str = ""
    rows: int = 0
    masked: int = 0
    operator: str = ""
    note: str = ""
    reports: tuple[dict, ...] = field(default_factory=tuple)


# -- pure functions ---------------------------------------------------------------------------

def release_number(release_id: str) -> int:
    match = _RELEASE_ID.fullmatch(str(release_id))
    if not match:
        raise ReleaseError(f"{RELEASES_TABLE}: {release_id!r} is not a release id (R1, R2, …)")
    return int(match.group(1))


def next_release_id(existing: list[str]) -> str:
    """R1 for the first release, then one more than the highest."""
    return f"R{max((release_number(r) for r in existing), default=0) + 1}"


def zone_tree(published: pd.DataFrame, territory) -> pd.DataFrame:
    """The zone tree of a published table, as the masking and the audit build it: the
    territory's zones and the IRIS found in the table. Text columns, missing as None."""
    zones = territory.zones(infra_zones(as_text(published), territory))[ZONE_COLUMNS]
    out = zones.astype(object).reset_index(drop=True)
    for column in ZONE_COLUMNS:
        out[column] = [None if pd.isna(v) else str(v) for v in out[column]]
    return out


def referential_sha256(zones: pd.DataFrame) -> str:
    """The hash of a zone tree, independent of row order (the fingerprint of its rows)."""
    frame = zones[ZONE_COLUMNS].astype(object)
    return frame_fingerprint(frame.where(frame.notna(), None))


def reports_inventory(folder: Path) -> list[dict]:
    """The files of reports/ (sub-folders included; hidden files and README left out), by
    name, with their sha256: what went out with a release."""
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in path.relative_to(folder).parts) or path.name.startswith("README"):
            continue
        out.append({"file": name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    return out


def release_for(fingerprint: str | None, summaries: list[dict]) -> str | None:
    """The id of the latest release whose table has this fingerprint, or None (a draft)."""
    found = [s["release_id"] for s in summaries if fingerprint and s["table_fingerprint"] == fingerprint]
    return found[-1] if found else None


# -- the warehouse ---------------------------------------------------------------------------

def _has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".", 1)
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
        "AND table_schema = ? AND table_name = ?", [schema, name]
    ).fetchone()[0])


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _select(table: str, release_id: str, names: list[str]) -> str:
    release_number(release_id)  # our own id format: safe to write in the query
    return f"(SELECT {', '.join(_q(n) for n in names)} FROM {table} WHERE release_id = '{release_id}')"


def _published_columns() -> list[str]:
    return column_names(PUBLISHED_TABLE)


def release_summaries(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The rows of published.releases, in release order, `reports` decoded; [] before the first."""
    if not _has_table(con, RELEASES_TABLE):
        return []
    names = column_names(RELEASES_TABLE)
    rows = con.execute(f"SELECT {', '.join(_q(n) for n in names)} FROM {RELEASES_TABLE}").fetchall()
    out = [dict(zip(names, row)) for row in rows]
    for summary in out:
        summary["reports"] = json.loads(summary["reports"] or "[]")
    return sorted(out, key=lambda s: release_number(s["release_id"]))


def history_problems(con: duckdb.DuckDBPyConnection, summaries: list[dict] | None = None) -> list[str]:
    """Each release whose stored rows or zones no longer match the fingerprints recorded with it."""
    summaries = release_summaries(con) if summaries is None else summaries
    problems = []
    for s in summaries:
        rid = s["release_id"]
        rows, digest = table_digest(con, _select(RELEASE_INDICATORS_TABLE, rid, _published_columns()))
        if rows != s["rows"] or digest != s["table_fingerprint"]:
            problems.append(f"the rows of release {rid} in {RELEASE_INDICATORS_TABLE} no longer match its fingerprint "
                            f"{s['table_fingerprint'][:12]} ({rows} rows, {s['rows']} released)")
        _, zones = table_digest(con, _select(RELEASE_ZONES_TABLE, rid, ZONE_COLUMNS))
        if zones != s["referential_sha256"]:
            problems.append(f"the zones of release {rid} in {RELEASE_ZONES_TABLE} no longer match its referential hash "
                            f"{s['referential_sha256'][:12]}")
    return problems


def release_problem(con: duckdb.DuckDBPyConnection, study, summaries: list[dict]) -> str | None:
    """Why published.indicators cannot be released now, or None."""
    if study.closed:
        return (f"the study {study.study_id} is closed (config/study.yaml): nothing is released after its "
                "closing; the history stays as it is")
    if not _has_table(con, PUBLISHED_TABLE):
        return f"{PUBLISHED_TABLE} does not exist: run the refresh first (make run)"
    problems = history_problems(con, summaries)
    if problems:
        return ("the release history was altered: " + "; ".join(problems)
                + ". Releases are never rewritten: restore the warehouse from a backup")
    cols = _published_columns()
    rows, fingerprint = table_digest(con, PUBLISHED_TABLE)
    if summaries and summaries[-1]["table_fingerprint"] == fingerprint:
        last = summaries[-1]
        return (f"nothing new to release: {PUBLISHED_TABLE} (fingerprint {fingerprint[:12]}, {rows} rows) is "
                f"release {last['release_id']}'s already")
    if not _has_table(con, CANDIDATE_TABLE):
        return (f"{CANDIDATE_TABLE} does not exist: the published table was not cleared by an audit here; "
                "run the refresh first")
    select = f"(SELECT {', '.join(_q(c) for c in cols)} FROM {{}})"
    published = table_digest(con, select.format(PUBLISHED_TABLE))
    candidate = table_digest(con, select.format(CANDIDATE_TABLE))
    if published != candidate:
        return (f"{PUBLISHED_TABLE} ({published[0]} rows, fingerprint {published[1][:12]}) is not the table the last "
                f"masking wrote and its audit judged ({CANDIDATE_TABLE}: {candidate[0]} rows, fingerprint "
                f"{candidate[1][:12]}): run the refresh first")
    if not _has_table(con, CONFIDENTIAL_TABLE):
        return f"{CONFIDENTIAL_TABLE} does not exist: run the refresh first"
    return None


def record_release(
    con: duckdb.DuckDBPyConnection, *, study, policy, territory, operator: str, note: str, reports_dir: Path,
    now: dt.datetime | None = None,
) -> ReleaseRecord:
    """Append a release of published.indicators to the history, in one transaction; refuses
    with a `ReleaseError` (see the module docstring). Returns the release as recorded."""
    with transaction(con):
        summaries = release_summaries(con)
        problem = release_problem(con, study, summaries)
        if problem:
            raise ReleaseError(problem)
        release_id = next_release_id([s["release_id"] for s in summaries])
        published = as_text(read_compact(con, f"SELECT * FROM {PUBLISHED_TABLE}"))
        zones = zone_tree(published, territory)
        rows, fingerprint = table_digest(con, PUBLISHED_TABLE)
        released_at = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
        reports = reports_inventory(Path(reports_dir))
        summary = {
            "release_id": release_id,
            "study_id": study.study_id,
            "released_at": released_at.replace(tzinfo=None),
            "policy_version": str(policy.version),
            "policy_sha256": str(policy.sha256),
            "threshold": int(policy.threshold),
            "rate_decimals": int(policy.rate_decimals),
            "referential_sha256": referential_sha256(zones),
            "table_fingerprint": fingerprint,
            "rows": rows,
            "masked": int((published["status"] == "masked").sum()),
            "operator": operator or "",
            "note": note or "",
            "reports": json.dumps(reports, ensure_ascii=False),
        }
        for table in RELEASE_TABLES:
            create_table(con, table)  # as declared in config/tables.yaml, if new (never replaced)
        names = column_names(RELEASES_TABLE)
        con.execute(f"INSERT INTO {RELEASES_TABLE} ({', '.join(_q(n) for n in names)}) "
                    f"VALUES ({', '.join('?' for _ in names)})", [summary[n] for n in names])
        cols = ", ".join(_q(c) for c in _published_columns())
        con.execute(f"INSERT INTO {RELEASE_INDICATORS_TABLE} (release_id, {cols}) "
                    f"SELECT ? AS release_id, {cols} FROM {PUBLISHED_TABLE}", [release_id])
        con.register("_release_zones", zones.assign(release_id=release_id))
        try:
            zone_cols = ", ".join(_q(c) for c in ["release_id", *ZONE_COLUMNS])
            con.execute(f"INSERT INTO {RELEASE_ZONES_TABLE} ({zone_cols}) SELECT {zone_cols} FROM _release_zones")
        finally:
            con.unregister("_release_zones")
        truth = ", ".join(_q(c) for c in TRUTH_COLUMNS)
        con.execute(f"INSERT INTO {RELEASE_VALUES_TABLE} (release_id, {truth}) "
                    f"SELECT ? AS release_id, {truth} FROM {CONFIDENTIAL_TABLE}", [release_id])
        # each history table still holds to its declaration (its key unique, its codes allowed)
        for table in RELEASE_TABLES:
            check_table(con, table)
        # what was written is what was meant: the stored rows and zones give back the recorded hashes
        problems = history_problems(con, [{**summary, "reports": reports}])
        if problems:
            raise ReleaseError("the release could not be stored faithfully: " + "; ".join(problems))
    return next(r for r in load_history(con) if r.release_id == release_id)


def _truth_frame(frame: pd.DataFrame | None = None) -> pd.DataFrame:
    if frame is not None:
        return frame.reset_index(drop=True)
    return pd.DataFrame({
        "level": pd.Series(dtype=object), "zone_code": pd.Series(dtype=object),
        "indicator": pd.Series(dtype=object), "year": pd.Series(dtype="int32"),
        "value": pd.Series(dtype="float64"), "numerator": pd.Series(dtype="float64"),
        "denominator": pd.Series(dtype="float64"),
    })


def _by_release(con: duckdb.DuckDBPyConnection, table: str, names: list[str]) -> dict[str, pd.DataFrame]:
    if not _has_table(con, table):
        return {}
    frame = as_text(read_compact(con, f"SELECT release_id, {', '.join(_q(n) for n in names)} FROM {table}"))
    return {str(rid): part.drop(columns="release_id").reset_index(drop=True)
            for rid, part in frame.groupby("release_id", sort=False, observed=True)}


def load_history(con: duckdb.DuckDBPyConnection) -> list[ReleaseRecord]:
    """Every release, in order; [] when there is none. `truth` is empty once the
    confidential schema is destroyed."""
    summaries = release_summaries(con)
    if not summaries:
        return []
    published_cols = _published_columns()
    rows = _by_release(con, RELEASE_INDICATORS_TABLE, published_cols)
    zones = _by_release(con, RELEASE_ZONES_TABLE, ZONE_COLUMNS)
    truths = _by_release(con, RELEASE_VALUES_TABLE, TRUTH_COLUMNS)
    empty_rows = pd.DataFrame({c: pd.Series(dtype=object) for c in published_cols})
    empty_zones = pd.DataFrame({c: pd.Series(dtype=object) for c in ZONE_COLUMNS})
    out = []
    for s in summaries:
        rid = s["release_id"]
        released_at = s["released_at"]
        if isinstance(released_at, dt.datetime) and released_at.tzinfo is None:
            released_at = released_at.replace(tzinfo=dt.timezone.utc)
        out.append(ReleaseRecord(
            release_id=rid,
            released_at=released_at,
            policy_version=s["policy_version"],
            policy_sha256=s["policy_sha256"],
            threshold=int(s["threshold"]),
            rate_decimals=int(s["rate_decimals"]),
            referential_sha256=s["referential_sha256"],
            table_fingerprint=s["table_fingerprint"],
            published=rows.get(rid, empty_rows),
            zones=zones.get(rid, empty_zones),
            truth=_truth_frame(truths.get(rid)),
            study_id=s["study_id"] or "",
            rows=int(s["rows"]),
            masked=int(s["masked"]),
            operator=s["operator"] or "",
            note=s["note"] or "",
            reports=tuple(s["reports"]),
        ))
    return out


def publication_state(con: duckdb.DuckDBPyConnection) -> dict:
    """For the manifest: the releases (id, date, policy version, fingerprints, rows) and
    whether the current published.indicators is one of them (`release`) or a draft."""
    summaries = release_summaries(con)
    current = table_digest(con, PUBLISHED_TABLE)[1] if _has_table(con, PUBLISHED_TABLE) else None
    return {
        "releases": [
            {"release_id": s["release_id"],
             "released_at": s["released_at"].replace(tzinfo=dt.timezone.utc).isoformat(timespec="seconds")
             if isinstance(s["released_at"], dt.datetime) else str(s["released_at"]),
             "policy_version": s["policy_version"], "table_fingerprint": s["table_fingerprint"],
             "referential_sha256": s["referential_sha256"], "rows": s["rows"], "masked": s["masked"]}
            for s in summaries
        ],
        "current_release": release_for(current, summaries),
    }
