"""The study's lifecycle: the end of the convention (art. 7) and the destruction duty (art. 2).

The convention ends when the study is published; the partner must then destroy the CAF's
data and may keep nothing but its published results. Dagster has no retention feature
(wiping an asset removes event records, never the data), so this module does it:

- the study (`config/study.yaml`) and its state (`<warehouse folder>/lifecycle/`);
- the refusals: no ingest for a closed or destroyed study (`assert_ingest_allowed`, called
  by every `raw_<source>` asset; `ingest_refusal` for sensors), no destruction unless the
  study is closed, published and named again by whoever asks for it;
- the destruction itself, in resumable steps recorded in a journal: raw files overwritten
  then deleted; the DuckDB file rewritten with only what is kept; Dagster's runs, event
  logs, captured stdout/stderr and IO-manager files of everything that touched the data
  purged, the SQLite files vacuumed;
- the residue scan: every byte under the project folder and DAGSTER_HOME searched for
  sentinel values (given, plus derived from the data before they go, kept in memory only);
- the certificate (procès-verbal de destruction) in French, HTML + JSON, in `reports/`.

What is destroyed is decided by rules, not by a list: DuckDB schemas `raw`, `staging` and
`confidential` (and any table not explicitly kept), the Dagster assets tagged
`classification: confidentiel-convention-caf` or whose table lies in a destroyed schema,
and every run that materialized, observed, checked or read one of them.

Nothing here writes a value of the data anywhere: paths, table names, sizes, hashes and
counts only.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import getpass
import gzip
import hashlib
import html
import io
import json
import os
import re
import socket
import sqlite3
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import yaml

from pipeline.settings import PACKAGE_ROOT, Paths, project_paths
from pipeline.study import Study, StudyError, _date, load_study, set_study_status  # noqa: F401 (re-exported)

LIFECYCLE_GROUP = "lifecycle"
CLASSIFICATION_TAG = "classification"
CONFIDENTIAL = "confidentiel-convention-caf"  # the tag of the ingest assets (pipeline.defs.ingest)

# ---- what is destroyed, kept, reduced (rules, not lists of tables) ----------------------

DESTROYED_SCHEMAS = ("raw", "staging", "confidential")
KEPT_SCHEMAS = {
    "published": "résultats publiés de l'étude, après application du secret statistique (art. 3 et 4) : "
    "ils sont la finalité de l'étude et ne permettent pas d'identifier un allocataire",
}
REDUCED_TABLES = {
    "lineage.ingest_ledger": (
        ("source", "year", "file_name", "size_bytes", "sha256"),
        "traçabilité de ce qui a été reçu de la CAF (nom, taille et empreinte des fichiers), sans aucun contenu",
    ),
}
OTHER_TABLE_REASON = "table hors de la liste des éléments conservés : détruite par défaut"
REPORT_REASON = "documents de l'étude destinés aux comités et à la CAF (art. 3), produits à partir des seuls résultats publiés"
CERTIFICATE_REASON = "le présent procès-verbal et son double JSON"

PAUSE_ENV = "CAF_LIFECYCLE_PAUSE_AT"  # test hook: pause (sleep) at a checkpoint so a test can kill the run
MIN_DERIVED_LENGTH = 6
MAX_DERIVED = 5000
SCAN_SKIP_DIRS = {".venv", ".git"}
_NUMBERISH = re.compile(r"^[\d\s\u00a0\u202f.,;:%/+\-()*'\"]*$")
_IDENTIFIER = re.compile(r"^(?:[0-9a-fA-F]{16,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")
DERIVE_FROM_SCHEMAS = ("raw",)  # the faithful copies of the files the CAF sent
FR_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre",
    "décembre",
)


class DestructionError(RuntimeError):
    """The destruction cannot proceed or did not complete; the message says why."""


class IngestRefused(dg.Failure):
    """An ingest asked for a closed or destroyed study."""


# ---- the study ------------------------------------------------------------------------


def current_study_id() -> str:
    """The study id every published output records."""
    return load_study().study_id


# ---- the study's state: journal and destruction marker ------------------------------------


def lifecycle_dir(paths: Paths | None = None) -> Path:
    return (paths or project_paths()).warehouse.parent / "lifecycle"


def journal_path(study_id: str, paths: Paths | None = None) -> Path:
    return lifecycle_dir(paths) / f"{study_id}.destruction-journal.json"


def marker_path(study_id: str, paths: Paths | None = None) -> Path:
    return lifecycle_dir(paths) / f"{study_id}.destroyed.json"


def certificate_paths(study_id: str, paths: Paths | None = None) -> tuple[Path, Path]:
    reports = (paths or project_paths()).reports
    stem = f"proces-verbal-destruction-{study_id}"
    return reports / f"{stem}.html", reports / f"{stem}.json"


def destruction_record(study_id: str, paths: Paths | None = None) -> dict | None:
    """The marker written when the study's data were destroyed (and the scan was clean)."""
    path = marker_path(study_id, paths)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


# ---- refusals -----------------------------------------------------------------------------


def ingest_refusal(paths: Paths | None = None) -> str | None:
    """Why no CAF data may be ingested now, or None when ingest is allowed.

    For sensors: `if (why := ingest_refusal()): return dg.SkipReason(why)`.
    """
    paths = paths or project_paths()
    try:
        study = load_study(paths.study)
    except StudyError as exc:
        return f"ingest refused: {exc}"
    record = destruction_record(study.study_id, paths)
    if record:
        return (
            f"ingest refused: the CAF data of study {study.study_id} were destroyed on "
            f"{record.get('destroyed_at', '?')} (convention art. 2; certificate {record.get('certificate_html', '')}). "
            "Nothing may be ingested again under this convention; a new study needs a new convention "
            "and a new study_id in config/study.yaml."
        )
    if journal_path(study.study_id, paths).exists():
        return (
            f"ingest refused: the destruction of study {study.study_id}'s data has started and is not complete; "
            f"finish it with `make destroy STUDY_ID={study.study_id}`."
        )
    if study.closed:
        published = study.published_on.isoformat() if study.published_on else "date not given"
        return (
            f"ingest refused: study {study.study_id} is closed (published: {published}); the convention ended "
            "with the publication (art. 7) and its data must now be destroyed (art. 2): "
            f"`make destroy STUDY_ID={study.study_id}`. To correct something before that, set "
            "`status: open` in config/study.yaml."
        )
    return None


def assert_ingest_allowed() -> None:
    """Raise a clear dg.Failure when the study is closed or its data destroyed."""
    why = ingest_refusal()
    if why:
        raise IngestRefused(description=why, allow_retries=False)


AUTOMATED_RUN_TAGS = (
    "dagster/schedule_name",
    "dagster/sensor_name",
    "dagster/auto_materialize",
    "dagster/from_automation_condition",
    "dagster/asset_evaluation_id",
)


def destruction_problems(study: Study, requested_study_id: str, run_tags: dict | None = None) -> list[str]:
    """Everything that forbids the destruction now; empty when it may proceed."""
    problems = []
    automated = sorted(t for t in AUTOMATED_RUN_TAGS if t in (run_tags or {}))
    if automated:
        problems.append(
            f"this run was started by a schedule, sensor or automation ({', '.join(automated)}); the destruction "
            "runs only on explicit request: `make destroy STUDY_ID=<study_id>`"
        )
    requested = (requested_study_id or "").strip()
    if not requested:
        problems.append(
            "the run config must repeat the study id: "
            f"ops: {{study_data_destruction: {{config: {{study_id: {study.study_id}}}}}}}"
        )
    elif requested != study.study_id:
        problems.append(
            f"the run config names study {requested!r}, but config/study.yaml declares {study.study_id!r}"
        )
    if not study.closed:
        problems.append(
            f"config/study.yaml: status is {study.status!r}; set `status: closed` once the study is published "
            "(the convention ends with the publication, art. 7)"
        )
    if study.published_on is None:
        problems.append("config/study.yaml: published_on is empty; give the publication date (YYYY-MM-DD)")
    elif study.published_on > dt.date.today():
        problems.append(f"config/study.yaml: published_on {study.published_on.isoformat()} is in the future")
    return problems


def decode_sentinels(values: Iterable[str]) -> list[str]:
    """Sentinels of the run config, given as `b64:<base64 of UTF-8>` (or `hex:`).

    Never in clear: Dagster stores the run config under DAGSTER_HOME, where the residue scan
    would find the very value it looks for. `python -m pipeline destroy --sentinel TEXT`
    encodes them.
    """
    out = []
    for i, value in enumerate(values):
        kind, _, payload = value.partition(":")
        try:
            if kind == "b64":
                raw = base64.b64decode(payload, validate=True)
            elif kind == "hex":
                raw = bytes.fromhex(payload)
            else:
                raise DestructionError(
                    f"sentinel #{i + 1} is not encoded: give it as b64:<base64> (or hex:<hex>) so that Dagster's copy "
                    "of the run config does not hold it in clear (python -m pipeline destroy --sentinel TEXT does it)"
                )
            text = raw.decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            if isinstance(exc, DestructionError):
                raise
            raise DestructionError(f"sentinel #{i + 1} cannot be decoded: {exc.__class__.__name__}") from None
        if len(text) < 4:
            raise DestructionError(f"sentinel #{i + 1} is shorter than 4 characters: it would match by chance")
        out.append(text)
    return out


def encode_sentinel(text: str) -> str:
    return "b64:" + base64.b64encode(text.encode("utf-8")).decode("ascii")


# ---- files: hash, overwrite then delete -----------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def overwrite_file(path: Path) -> None:
    """One pass of random bytes over the whole file, flushed to disk (the file stays)."""
    size = path.stat().st_size
    with open(path, "r+b", buffering=0) as handle:
        left = size
        while left > 0:
            n = min(left, 1 << 20)
            handle.write(os.urandom(n))
            left -= n
        os.fsync(handle.fileno())


def shred_file(path: Path) -> None:
    """Overwrite then delete one file (a symlink is only unlinked)."""
    if path.is_symlink():
        path.unlink()
        return
    if not path.exists():
        return
    overwrite_file(path)
    path.unlink()
    _fsync_dir(path.parent)


def shred_tree(folder: Path) -> None:
    if not folder.exists():
        return
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_file() or path.is_symlink():
            shred_file(path)
        elif path.is_dir():
            path.rmdir()
    folder.rmdir()


def _write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=2, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _iso(moment: dt.datetime | None = None) -> str:
    return (moment or _now()).isoformat(timespec="seconds")


# ---- the residue scan -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sentinel:
    text: str
    origin: str  # "fourni" (run config) or "dérivé" (from the data, before destruction)


ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be", "cp1252", "json-ascii")


def sentinel_patterns(text: str) -> dict[str, bytes]:
    """The byte forms under which a text may sit in a file."""
    forms: dict[str, bytes] = {"utf-8": text.encode("utf-8")}
    for label, codec in (("utf-16-le", "utf-16-le"), ("utf-16-be", "utf-16-be"), ("cp1252", "cp1252")):
        try:
            forms[label] = text.encode(codec)
        except UnicodeEncodeError:
            pass
    escaped = json.dumps(text)[1:-1].encode("ascii", "backslashreplace")
    forms["json-ascii"] = escaped
    out: dict[str, bytes] = {}
    for label, pattern in forms.items():
        if pattern not in out.values():
            out[label] = pattern
    return out


@dataclass
class ScanReport:
    roots: list[str] = field(default_factory=list)
    files_scanned: int = 0
    bytes_scanned: int = 0
    archive_members_scanned: int = 0
    sentinels_given: int = 0
    sentinels_derived: int = 0
    encodings: list[str] = field(default_factory=list)
    hits: list[dict] = field(default_factory=list)  # path, form, origin, count: never the value
    tables_scanned: int = 0
    unreadable: list[str] = field(default_factory=list)
    finished_at: str = ""

    @property
    def clean(self) -> bool:
        return not self.hits

    def to_dict(self) -> dict:
        return {
            "roots": self.roots, "files_scanned": self.files_scanned, "bytes_scanned": self.bytes_scanned,
            "archive_members_scanned": self.archive_members_scanned, "sentinels_given": self.sentinels_given,
            "sentinels_derived": self.sentinels_derived, "encodings": self.encodings, "hits": self.hits,
            "tables_scanned": self.tables_scanned, "unreadable": self.unreadable, "clean": self.clean,
            "finished_at": self.finished_at,
        }


def _walk_files(roots: Iterable[Path]) -> Iterator[Path]:
    seen: set[str] = set()
    for root in roots:
        if not root.exists():
            continue
        if root.is_file():
            candidates: Iterable[Path] = [root]
        else:
            def _gen(top: Path = root) -> Iterator[Path]:
                for current, dirs, files in os.walk(top, followlinks=False):
                    dirs[:] = sorted(d for d in dirs if d not in SCAN_SKIP_DIRS)
                    for name in sorted(files):
                        yield Path(current) / name
            candidates = _gen()
        for path in candidates:
            if path.is_symlink() or not path.is_file():
                continue
            key = os.path.realpath(path)
            if key in seen:
                continue
            seen.add(key)
            yield path


def _count_forms(data: bytes, sentinels: list[tuple[Sentinel, dict[str, bytes]]]) -> list[tuple[Sentinel, str, int]]:
    found = []
    for sentinel, forms in sentinels:
        for label, pattern in forms.items():
            n = data.count(pattern)
            if n:
                found.append((sentinel, label, n))
    return found


def _expand(data: bytes) -> Iterator[tuple[str, bytes]]:
    """Members of a zip (xlsx, docx...) or the content of a gzip file, decompressed."""
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for info in archive.infolist():
                    if not info.is_dir() and info.file_size < (512 << 20):
                        yield info.filename, archive.read(info)
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError):
            return
    elif data[:2] == b"\x1f\x8b":
        try:
            yield "gzip", gzip.decompress(data)
        except (OSError, EOFError):
            return


def residue_scan(roots: Iterable[Path], sentinels: list[Sentinel], display: Callable[[Path], str] = str) -> ScanReport:
    """Search every file under `roots` (not following links; .venv and .git skipped) for
    every sentinel in every byte form of `sentinel_patterns`, inside zip/gzip members too."""
    roots = list(roots)
    report = ScanReport(
        roots=[str(r) for r in roots],
        sentinels_given=sum(s.origin == "fourni" for s in sentinels),
        sentinels_derived=sum(s.origin == "dérivé" for s in sentinels),
    )
    prepared = [(s, sentinel_patterns(s.text)) for s in sentinels]
    report.encodings = list(ENCODINGS)
    max_len = max((len(p) for _, forms in prepared for p in forms.values()), default=1)
    hits: dict[tuple[str, str, str], int] = {}

    def add(path_label: str, found: list[tuple[Sentinel, str, int]]) -> None:
        for sentinel, label, n in found:
            key = (path_label, label, sentinel.origin)
            hits[key] = hits.get(key, 0) + n

    for path in _walk_files(roots):
        try:
            size = path.stat().st_size
            report.files_scanned += 1
            report.bytes_scanned += size
            if size <= (256 << 20):
                data = path.read_bytes()
                add(display(path), _count_forms(data, prepared))
                for member, content in _expand(data):
                    report.archive_members_scanned += 1
                    add(f"{display(path)}!{member}", _count_forms(content, prepared))
            else:
                with open(path, "rb") as handle:
                    tail = b""
                    while block := handle.read(64 << 20):
                        add(display(path), _count_forms(tail + block, prepared))
                        tail = block[-(max_len - 1):] if max_len > 1 else b""
        except OSError as exc:
            report.unreadable.append(f"{display(path)} ({exc.__class__.__name__})")
    report.hits = [
        {"path": p, "form": form, "origin": origin, "count": n} for (p, form, origin), n in sorted(hits.items())
    ]
    report.finished_at = _iso()
    return report


def scan_duckdb_tables(db: Path, sentinels: list[Sentinel], display: str) -> tuple[int, list[dict]]:
    """Search every text column of every table of a DuckDB file (compressed strings
    included, which a byte scan might miss)."""
    if not db.exists() or not sentinels:
        return 0, []
    texts = [s.text for s in sentinels]
    origins = {s.text: s.origin for s in sentinels}
    con = duckdb.connect(str(db), read_only=True)
    hits = []
    try:
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal AND NOT temporary"
        ).fetchall()
        for schema, table in tables:
            columns = [
                c for c, t in con.execute(
                    "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
                    [schema, table],
                ).fetchall()
                if t == "VARCHAR"
            ]
            for column in columns:
                rows = con.execute(
                    f'SELECT s, count(*) FROM "{schema}"."{table}" t, (SELECT unnest(?::VARCHAR[]) AS s) '
                    f'WHERE contains(t."{column}", s) GROUP BY s',
                    [texts],
                ).fetchall()
                for text, n in rows:
                    hits.append({"path": f"{display} :: {schema}.{table}.{column}", "form": "texte (SQL)",
                                 "origin": origins[text], "count": int(n)})
        return len(tables), hits
    finally:
        con.close()


# ---- the warehouse -------------------------------------------------------------------------


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qualified(schema: str, table: str, catalog: str | None = None) -> str:
    return (f"{_q(catalog)}." if catalog else "") + f"{_q(schema)}.{_q(table)}"


def table_digest(con: duckdb.DuckDBPyConnection, qualified: str) -> tuple[int, str]:
    """(rows, sha256 of the rows as text, sorted): the fingerprint of a table's content."""
    rows, digest = con.execute(
        f"SELECT count(*), sha256(coalesce(string_agg(CAST(t AS VARCHAR), chr(10) ORDER BY CAST(t AS VARCHAR)), '')) "
        f"FROM {qualified} t"
    ).fetchone()
    return int(rows), str(digest)


def classify_table(schema: str, table: str) -> tuple[str, str]:
    """('destroy' | 'keep' | 'reduce', reason) for one table of the warehouse."""
    name = f"{schema}.{table}"
    if schema in DESTROYED_SCHEMAS:
        return "destroy", f"schéma {schema} : données reçues de la CAF ou calculées à partir d'elles (art. 2)"
    if name in REDUCED_TABLES:
        return "reduce", REDUCED_TABLES[name][1]
    if schema in KEPT_SCHEMAS:
        return "keep", KEPT_SCHEMAS[schema]
    return "destroy", OTHER_TABLE_REASON


def warehouse_inventory(con: duckdb.DuckDBPyConnection) -> dict:
    tables = con.execute(
        "SELECT schema_name, table_name, column_count FROM duckdb_tables() "
        "WHERE NOT internal AND NOT temporary AND database_name = current_database() ORDER BY 1, 2"
    ).fetchall()
    views = con.execute(
        "SELECT schema_name, view_name FROM duckdb_views() "
        "WHERE NOT internal AND NOT temporary AND database_name = current_database() ORDER BY 1, 2"
    ).fetchall()
    out: dict[str, list] = {"tables_destroyed": [], "tables_kept": [], "tables_reduced": [], "views_destroyed": [],
                            "views_kept": []}
    for schema, table, n_columns in tables:
        action, reason = classify_table(schema, table)
        rows, digest = table_digest(con, _qualified(schema, table))
        item = {"table": f"{schema}.{table}", "rows": rows, "columns": int(n_columns), "sha256": digest,
                "reason": reason}
        if action == "reduce":
            columns = [c for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
                "AND database_name = current_database() ORDER BY column_index", [schema, table]).fetchall()]
            keep = [c for c in REDUCED_TABLES[f"{schema}.{table}"][0] if c in columns]
            item.update(columns_kept=keep, columns_removed=[c for c in columns if c not in keep])
        out[{"destroy": "tables_destroyed", "keep": "tables_kept", "reduce": "tables_reduced"}[action]].append(item)
    for schema, view in views:
        action, reason = classify_table(schema, view)
        key = "views_kept" if action == "keep" else "views_destroyed"
        out[key].append({"view": f"{schema}.{view}", "reason": reason})
    return out


def derive_sentinels(con: duckdb.DuckDBPyConnection, exclude: Callable[[str], bool]) -> list[str]:
    """Distinctive text cells of the raw tables, i.e. of the files the CAF sent (labels, extra
    columns; length >= 6; not numbers, hashes or ids; not anywhere in what is kept or public,
    which `exclude` says): kept in memory only."""
    found: set[str] = set()
    columns = con.execute(
        "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
        "WHERE data_type = 'VARCHAR' AND database_name = current_database() "
        "AND schema_name IN (SELECT unnest(?::VARCHAR[])) ORDER BY 1, 2, 3",
        [list(DERIVE_FROM_SCHEMAS)],
    ).fetchall()
    base_tables = {
        (s, t) for s, t in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    }
    for schema, table, column in columns:
        if (schema, table) not in base_tables or column.startswith("_"):  # _file, _sheet: provenance
            continue
        values = con.execute(
            f"SELECT DISTINCT trim({_q(column)}) FROM {_qualified(schema, table)} "
            f"WHERE length(trim({_q(column)})) >= {MIN_DERIVED_LENGTH}"
        ).fetchall()
        for (value,) in values:
            if value and not _NUMBERISH.match(value) and not _IDENTIFIER.match(value):
                found.add(value)
    return sorted(v for v in found if not exclude(v))[:MAX_DERIVED]


def kept_text_values(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every text value of what is kept (published tables, reduced ledger columns)."""
    values: set[str] = set()
    for schema, table, column in con.execute(
        "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
        "WHERE data_type = 'VARCHAR' AND database_name = current_database()"
    ).fetchall():
        name = f"{schema}.{table}"
        action, _ = classify_table(schema, table)
        if action == "keep" or (action == "reduce" and column in REDUCED_TABLES[name][0]):
            values.update(v for (v,) in con.execute(
                f"SELECT DISTINCT trim({_q(column)}) FROM {_qualified(schema, table)} WHERE {_q(column)} IS NOT NULL"
            ).fetchall())
    return values


# ---- Dagster ------------------------------------------------------------------------------


def purged_asset_keys(graph) -> dict[dg.AssetKey, str]:
    """The assets whose data are destroyed, with the reason: tagged confidential, or
    writing a table of a destroyed schema."""
    out = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.group_name == LIFECYCLE_GROUP:
            continue
        table = str((node.metadata or {}).get("dagster/table_name", "") or "")
        if (node.tags or {}).get(CLASSIFICATION_TAG) == CONFIDENTIAL:
            out[key] = f"étiqueté classification={CONFIDENTIAL}"
        elif table.split(".")[0] in DESTROYED_SCHEMAS and "." in table:
            out[key] = f"écrit {table}, schéma détruit"
    return out


_RUN_EVENT_TYPES = {
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.ASSET_OBSERVATION,
    dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    dg.DagsterEventType.ASSET_FAILED_TO_MATERIALIZE,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
}


def _event_asset_key(entry) -> dg.AssetKey | None:
    event = entry.dagster_event
    if event is None:
        return None
    key = event.asset_key
    if key is None:
        key = getattr(event.event_specific_data, "asset_key", None)
    return key


def runs_touching(instance: dg.DagsterInstance, keys: set[dg.AssetKey], exclude_run_ids: set[str]) -> list[dict]:
    """Every run that planned, materialized, observed, checked or read (a child of) one of `keys`."""
    out = []
    for record in instance.get_run_records():
        run = record.dagster_run
        if run.run_id in exclude_run_ids:
            continue
        touched = set(run.asset_selection or ()) | {c.asset_key for c in (run.asset_check_selection or ())}
        for entry in instance.all_logs(run.run_id, of_type=_RUN_EVENT_TYPES):
            key = _event_asset_key(entry)
            if key is not None:
                touched.add(key)
        hit = sorted(k.to_user_string() for k in touched & keys)
        if hit:
            started = record.start_time or record.create_timestamp.timestamp()
            out.append({
                "run_id": run.run_id,
                "job_name": run.job_name,
                "status": run.status.value,
                "started_at": _iso(dt.datetime.fromtimestamp(started, dt.timezone.utc)) if started else "",
                "assets": hit,
            })
    return out


def _fetch_all(fetch, key: dg.AssetKey) -> list:
    """Every record of `fetch` (fetch_materializations / fetch_observations), newest first."""
    out, cursor = [], None
    while True:
        result = fetch(key, limit=10000, cursor=cursor)
        out.extend(result.records)
        if not result.has_more:
            return out
        cursor = result.cursor


def _materialization_summary(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict:
    records = _fetch_all(instance.fetch_materializations, key)
    partitions = sorted({r.partition_key for r in records if r.partition_key})
    times = [r.timestamp for r in records]
    tables = sorted({
        str(r.asset_materialization.metadata["dagster/table_name"].value)
        for r in records
        if r.asset_materialization and "dagster/table_name" in r.asset_materialization.metadata
    })
    observations = len(_fetch_all(instance.fetch_observations, key))
    return {
        "materializations": len(records),
        "observations": observations,
        "partitions": partitions,
        "tables": tables,
        "first_materialized_at": _iso(dt.datetime.fromtimestamp(min(times), dt.timezone.utc)) if times else "",
        "last_materialized_at": _iso(dt.datetime.fromtimestamp(max(times), dt.timezone.utc)) if times else "",
    }


def _sqlite_files(home: Path) -> list[Path]:
    out = []
    for path in _walk_files([home]):
        try:
            with open(path, "rb") as handle:
                if handle.read(16) == b"SQLite format 3\x00":
                    out.append(path)
        except OSError:
            continue
    return out


def vacuum_sqlite(path: Path) -> None:
    """Rebuild a SQLite file so that freed pages keep nothing; empty its WAL."""
    con = sqlite3.connect(str(path), timeout=120, isolation_level=None)
    try:
        con.execute("PRAGMA busy_timeout = 120000")
        con.execute("VACUUM")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


# ---- the journal ------------------------------------------------------------------------------


class Journal:
    """The destruction's progress, on disk after every step, so that a killed run resumes.

    It holds paths, table names, sizes, hashes and counts only."""

    def __init__(self, path: Path, study_id: str):
        self.path = path
        if path.exists():
            self.data = json.loads(path.read_text(encoding="utf-8"))
        else:
            self.data = {"format": 1, "study_id": study_id, "created_at": _iso(), "attempts": [], "steps": {},
                         "inventory": {}, "results": {}}

    def save(self) -> None:
        _write_json_atomic(self.path, self.data)

    def done(self, step: str) -> bool:
        return step in self.data["steps"]

    def mark(self, step: str) -> None:
        self.data["steps"][step] = _iso()
        self.save()
        checkpoint(self, step)

    @property
    def inventory(self) -> dict:
        return self.data["inventory"]

    @property
    def results(self) -> dict:
        return self.data["results"]


def checkpoint(journal: Journal, name: str) -> None:
    """Test hook: with CAF_LIFECYCLE_PAUSE_AT=<name>, stop here (sleeping) until killed."""
    if os.environ.get(PAUSE_ENV) == name:
        journal.data["paused_at"] = name
        journal.save()
        while True:  # pragma: no cover - killed by the test
            time.sleep(0.5)


# ---- the destruction ----------------------------------------------------------------------------


@dataclass
class Outcome:
    study: Study
    journal: Journal
    scan: ScanReport
    certificate_html: Path
    certificate_json: Path
    already_done: bool = False
    certificate: dict = field(default_factory=dict)


class Destruction:
    """One attempt at destroying the study's data; every step is idempotent and resumes."""

    def __init__(
        self,
        *,
        study: Study,
        instance: dg.DagsterInstance,
        graph,
        warehouse_db: Path,
        lock: Callable[[], Any],
        log,
        run_id: str,
        operator: str = "",
        sentinels: list[str] | None = None,
        paths: Paths | None = None,
    ):
        self.study = study
        self.instance = instance
        self.graph = graph
        self.db = warehouse_db
        self.lock = lock
        self.log = log
        self.run_id = run_id
        self.operator = operator.strip()
        self.given = list(sentinels or [])
        self.paths = paths or project_paths()
        root = getattr(instance, "root_directory", None)
        if not root or instance.is_ephemeral:
            raise DestructionError(
                "the destruction runs on the project's persistent Dagster instance only (DAGSTER_HOME): "
                "an ephemeral instance's storage could not be purged nor scanned"
            )
        self.home = Path(root).resolve()
        self.journal = Journal(journal_path(study.study_id, self.paths), study.study_id)
        self.derived: list[str] = []  # in memory only
        self.html_path, self.json_path = certificate_paths(study.study_id, self.paths)

    # -- helpers --
    def show(self, path: Path) -> str:
        """A path as the certificate shows it: relative to the project or DAGSTER_HOME."""
        path = Path(path)
        for base, label in ((self.paths.root, ""), (self.home, "DAGSTER_HOME/")):
            try:
                return label + str(path.resolve().relative_to(base.resolve()))
            except ValueError:
                continue
        return str(path)

    def file_item(self, path: Path) -> dict:
        return {"path": self.show(path), "size_bytes": path.stat().st_size, "sha256": sha256_file(path)}

    def raw_files(self) -> list[Path]:
        raw = self.paths.raw
        if not raw.exists():
            return []
        return [
            p for p in sorted(raw.rglob("*"))
            if (p.is_file() or p.is_symlink()) and not (p.parent == raw and p.name.upper().startswith("README"))
        ]

    def report_files(self) -> list[Path]:
        reports = self.paths.reports
        if not reports.exists():
            return []
        own = {self.html_path.name, self.json_path.name}
        return [p for p in sorted(reports.rglob("*")) if p.is_file() and p.name not in own]

    # -- the run --
    def run(self) -> Outcome:
        record = destruction_record(self.study.study_id, self.paths)
        self.close_dead_attempts()
        self.journal.data["attempts"].append({
            "run_id": self.run_id, "started_at": _iso(), "executed_by": _os_user(), "operator": self.operator,
            "host": socket.gethostname(), "pid": os.getpid(),
        })
        self.journal.save()
        if record and self.journal.done("certificate"):
            return self.verify_again()
        self.journal.data.pop("paused_at", None)
        for step in (self.step_inventory, self.step_derive, self.step_raw_files, self.step_warehouse,
                     self.step_dagster, self.step_markers):
            started = time.monotonic()
            step()
            self.log.debug(f"{step.__name__}: {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        scan = self.step_scan()
        self.log.debug(f"step_scan: {time.monotonic() - started:.1f} s")
        return self.step_certificate(scan)

    def close_dead_attempts(self) -> None:
        """An earlier attempt killed half-way stays 'started' in Dagster: mark it failed (and free
        what it held) once its process is gone; refuse to run beside one still alive."""
        for attempt in self.journal.data["attempts"]:
            run_id, pid = attempt.get("run_id"), attempt.get("pid")
            if not run_id or run_id == self.run_id or not pid or attempt.get("host") != socket.gethostname():
                continue
            run = self.instance.get_run_by_id(run_id)
            if run is None or run.status not in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING):
                continue
            if pid != os.getpid() and _pid_alive(pid):
                raise DestructionError(
                    f"an earlier destruction run ({run_id}, process {pid}) is still running: wait for it or stop it"
                )
            self.instance.report_run_failed(
                run, message=f"interrupted before the end; the destruction was resumed by run {self.run_id}"
            )
            try:
                self.instance.event_log_storage.free_concurrency_slots_for_run(run_id)
            except NotImplementedError:
                pass
            attempt["outcome"] = "interrompue"

    def verify_again(self) -> Outcome:
        """Already destroyed: only the residue scan again (the certificate is not rewritten)."""
        scan = self.scan(self.given_sentinels())
        self.journal.data.setdefault("verifications", []).append(
            {"run_id": self.run_id, "at": _iso(), "clean": scan.clean, "hits": scan.hits,
             "files_scanned": scan.files_scanned}
        )
        self.journal.save()
        return Outcome(self.study, self.journal, scan, self.html_path, self.json_path, already_done=True,
                       certificate=json.loads(self.json_path.read_text(encoding="utf-8"))
                       if self.json_path.exists() else {})

    def given_sentinels(self) -> list[Sentinel]:
        return [Sentinel(t, "fourni") for t in self.given]

    # -- step 1: what there is, before anything goes --
    def step_inventory(self) -> None:
        if self.journal.done("inventory"):
            self.log.info("inventory: already taken by an earlier attempt, reused")
            return
        inv = self.journal.inventory
        inv["raw_files"] = [dict(self.file_item(p), destroyed_at="") for p in self.raw_files()]
        inv["reports_kept"] = [dict(self.file_item(p), reason=REPORT_REASON) for p in self.report_files()]
        inv["warehouse_file"] = self.file_item(self.db) if self.db.exists() else None
        if self.db.exists():
            with self.lock():
                con = duckdb.connect(str(self.db), read_only=True)
                try:
                    inv["warehouse"] = warehouse_inventory(con)
                finally:
                    con.close()
        else:
            inv["warehouse"] = warehouse_inventory_empty()
        purged = purged_asset_keys(self.graph)
        inv["assets_purged"] = []
        for key, reason in sorted(purged.items(), key=lambda kv: kv[0].to_user_string()):
            summary = _materialization_summary(self.instance, key) if self.instance.has_asset_key(key) else {}
            inv["assets_purged"].append(dict({"asset_key": key.to_user_string(), "reason": reason}, **summary))
        runs = runs_touching(self.instance, self.touched_keys(), {self.run_id} | self.own_runs())
        inv["runs_planned"] = len(runs)
        inv["restate"] = self.restatements({r["run_id"] for r in runs}, set(purged))
        self.journal.mark("inventory")
        self.log.info(
            f"inventory: {len(inv['raw_files'])} raw file(s), "
            f"{len(inv['warehouse']['tables_destroyed'])} table(s) to destroy, "
            f"{len(inv['warehouse']['tables_kept'])} kept, {len(inv['warehouse']['tables_reduced'])} reduced, "
            f"{len(inv['assets_purged'])} Dagster asset(s) to purge, {len(runs)} run(s) to delete"
        )

    def own_runs(self) -> set[str]:
        return {a["run_id"] for a in self.journal.data["attempts"]}

    def touched_keys(self) -> set[dg.AssetKey]:
        purged = set(purged_asset_keys(self.graph))
        children = {c for k in purged if self.graph.has(k) for c in self.graph.get(k).child_keys}
        children = {c for c in children if self.graph.get(c).group_name != LIFECYCLE_GROUP}
        return purged | children

    def restatements(self, deleted_runs: set[str], purged: set[dg.AssetKey]) -> list[dict]:
        """The latest materialization (per partition) of each kept asset that lives in a run
        about to be deleted: re-recorded afterwards so the published lineage stays visible."""
        from dagster._serdes import serialize_value

        out = []
        for key in sorted(self.graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
            node = self.graph.get(key)
            if key in purged or node.group_name == LIFECYCLE_GROUP or not self.instance.has_asset_key(key):
                continue
            latest: dict[str | None, Any] = {}
            for record in _fetch_all(self.instance.fetch_materializations, key):
                latest.setdefault(record.partition_key, record)  # newest first
            for partition, record in sorted(latest.items(), key=lambda kv: str(kv[0])):
                if record.run_id not in deleted_runs:
                    continue
                out.append({
                    "asset_key": key.to_user_string(),
                    "partition": partition,
                    "original_run_id": record.run_id,
                    "originally_materialized_at": record.timestamp,
                    "metadata": serialize_value(dict(record.asset_materialization.metadata)),
                    "description": record.asset_materialization.description or "",
                    "restated_at": "",
                })
        return out

    # -- step 2: values to scan for, derived from the data (memory only) --
    def step_derive(self) -> None:
        if not self.db.exists():
            return
        baseline = self.baseline_text()
        try:
            with self.lock():
                con = duckdb.connect(str(self.db), read_only=True)
                try:
                    kept = kept_text_values(con)

                    def exclude(value: str) -> bool:
                        return value in kept or value in baseline

                    self.derived = derive_sentinels(con, exclude)
                finally:
                    con.close()
        except duckdb.Error:
            self.derived = []
            self.log.warning("derived sentinels: the warehouse is being rewritten by an earlier attempt; "
                             "only the given sentinels are searched in this attempt")
        self.journal.results.setdefault("derived_sentinels_first_attempt", len(self.derived))
        self.journal.results["derived_sentinels"] = len(self.derived)
        self.journal.save()
        self.log.info(f"residue scan: {len(self.derived)} value(s) derived from the data, kept in memory only")

    def baseline_text(self) -> str:
        """Text of what is public or kept (code, configuration, documentation, reports):
        a value found there is not distinctive of the CAF data."""
        skip = {".venv", ".git", "__pycache__", ".pytest_cache", ".hypothesis", ".dagster_home"}
        data_dirs = {self.paths.raw.resolve(), self.db.parent.resolve(), self.home}
        suffixes = {".py", ".sql", ".yaml", ".yml", ".md", ".csv", ".toml", ".txt", ".json", ".html", ".cfg", ".ini"}
        texts = []
        for base in {PACKAGE_ROOT.resolve(), self.paths.root.resolve(), self.paths.config.resolve(),
                     self.paths.reports.resolve()}:
            if not base.exists():
                continue
            for current, dirs, files in os.walk(base):
                here = Path(current).resolve()
                dirs[:] = [d for d in dirs if d not in skip and (here / d).resolve() not in data_dirs
                           and not (base == PACKAGE_ROOT.resolve() and d in ("raw", "warehouse", "reports"))
                           and not (here / d).resolve().is_relative_to(self.home)]
                for name in files:
                    path = here / name
                    if path.suffix.lower() not in suffixes or path.stat().st_size > (20 << 20):
                        continue
                    data = path.read_bytes()
                    texts.append(data.decode("utf-8", errors="ignore"))
                    texts.append(data.decode("cp1252", errors="ignore"))
            # xlsx reports: their shared strings
            if base == self.paths.reports.resolve():
                for path in base.rglob("*"):
                    if path.is_file() and path.suffix.lower() not in suffixes:
                        for _, content in _expand(path.read_bytes()):
                            texts.append(content.decode("utf-8", errors="ignore"))
        return "\x00".join(texts)

    # -- step 3: raw files --
    def step_raw_files(self) -> None:
        if self.journal.done("raw_files"):
            return
        items = self.journal.inventory["raw_files"]
        known = {i["path"] for i in items}
        for path in self.raw_files():  # files that arrived since the inventory, if any
            if self.show(path) not in known:
                items.append(dict(self.file_item(path), destroyed_at="", note="apparu après l'inventaire"))
        self.journal.save()
        for n, item in enumerate(items, start=1):
            if item.get("destroyed_at"):
                continue
            path = self.resolve(item["path"])
            shred_file(path)
            item["destroyed_at"] = _iso()
            self.journal.save()
            checkpoint(self.journal, f"raw_file:{n}")
        removed = []
        raw = self.paths.raw
        if raw.exists():
            for folder in sorted((p for p in raw.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                if not any(folder.iterdir()):
                    folder.rmdir()
                    removed.append(self.show(folder))
        self.journal.results["raw_folders_removed"] = removed
        self.log.info(f"raw files: {len(items)} overwritten then deleted")
        self.journal.mark("raw_files")

    def resolve(self, shown: str) -> Path:
        if shown.startswith("DAGSTER_HOME/"):
            return self.home / shown[len("DAGSTER_HOME/"):]
        path = Path(shown)
        return path if path.is_absolute() else self.paths.root / path

    # -- step 4: the warehouse, rewritten --
    def step_warehouse(self) -> None:
        if self.journal.done("warehouse"):
            return
        state = self.journal.results.setdefault("warehouse", {})
        fresh = self.db.with_name(self.db.name + ".rewrite")
        with self.lock():
            if not self.db.exists() and not fresh.exists():
                state["note"] = "aucune base DuckDB"
                self.journal.mark("warehouse")
                return
            if not state.get("copied") or not fresh.exists():
                if state.get("old_overwritten"):
                    if self.db.exists() and sha256_file(self.db) == state.get("fresh_sha256"):
                        state["replaced"] = _iso()  # killed between the replace and the journal
                    else:
                        raise DestructionError(
                            f"{self.show(self.db)}: the old file was overwritten but its rewritten copy "
                            f"{self.show(fresh)} is missing; restore the warehouse from the published "
                            "outputs before re-running"
                        )
                else:
                    if fresh.exists():
                        shred_file(fresh)  # a copy interrupted half-way
                    self.copy_kept(fresh)
                    state["copied"] = _iso()
                    state["fresh_sha256"] = sha256_file(fresh)
                    self.journal.save()
                    checkpoint(self.journal, "warehouse_copied")
            if not state.get("replaced"):
                if not state.get("old_overwritten"):
                    for extra in (self.db.with_name(self.db.name + ".wal"),):
                        if extra.exists():
                            shred_file(extra)
                    if self.db.exists():
                        overwrite_file(self.db)
                    state["old_overwritten"] = _iso()
                    self.journal.save()
                    checkpoint(self.journal, "warehouse_old_overwritten")
                os.replace(fresh, self.db)
                _fsync_dir(self.db.parent)
                state["replaced"] = _iso()
                self.journal.save()
            state["after"] = self.file_item(self.db)
        now = _iso()
        for item in self.journal.inventory["warehouse"]["tables_destroyed"]:
            item.setdefault("destroyed_at", now)
        self.log.info(f"warehouse: rewritten with the kept tables only ({state['after']['size_bytes']} bytes)")
        self.journal.mark("warehouse")

    def copy_kept(self, fresh: Path) -> None:
        """Copy what is kept into a fresh DuckDB file, checking each table's fingerprint."""
        inv = self.journal.inventory["warehouse"]
        expected = {i["table"]: i["sha256"] for i in inv["tables_kept"]}
        con = duckdb.connect(str(self.db))
        try:
            old = con.execute("SELECT current_database()").fetchone()[0]
            con.execute(f"ATTACH '{str(fresh).replace(chr(39), chr(39) * 2)}' AS fresh")
            con.execute("USE fresh")
            creates = {
                f"{s}.{t}": sql for s, t, sql in con.execute(
                    "SELECT schema_name, table_name, sql FROM duckdb_tables() WHERE database_name = ?", [old]
                ).fetchall()
            }
            for item in inv["tables_kept"]:
                schema, table = item["table"].split(".", 1)
                con.execute(f"CREATE SCHEMA IF NOT EXISTS fresh.{_q(schema)}")
                con.execute(creates[item["table"]])
                con.execute(f"INSERT INTO {_qualified(schema, table, 'fresh')} "
                            f"SELECT * FROM {_qualified(schema, table, old)}")
                _, digest = table_digest(con, _qualified(schema, table, "fresh"))
                if digest != expected[item["table"]]:
                    raise DestructionError(f"{item['table']}: the copy differs from the original; nothing was destroyed")
                item["sha256_after"] = digest
            for item in inv["tables_reduced"]:
                schema, table = item["table"].split(".", 1)
                con.execute(f"CREATE SCHEMA IF NOT EXISTS fresh.{_q(schema)}")
                cols = ", ".join(_q(c) for c in item["columns_kept"])
                con.execute(f"CREATE TABLE {_qualified(schema, table, 'fresh')} AS "
                            f"SELECT {cols} FROM {_qualified(schema, table, old)}")
                item["rows_after"], item["sha256_after"] = table_digest(con, _qualified(schema, table, "fresh"))
            views = con.execute(
                "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE database_name = ? AND NOT internal", [old]
            ).fetchall()
            kept_views = {v["view"] for v in inv["views_kept"]}
            for schema, view, sql in views:
                if f"{schema}.{view}" in kept_views:
                    con.execute(f"CREATE SCHEMA IF NOT EXISTS fresh.{_q(schema)}")
                    con.execute(sql)
            con.execute(f"USE {_q(old)}")
            con.execute("DETACH fresh")
        finally:
            con.close()
        with open(fresh, "rb+") as handle:
            os.fsync(handle.fileno())
        _fsync_dir(fresh.parent)
        self.journal.save()

    # -- step 5: Dagster --
    def step_dagster(self) -> None:
        if self.journal.done("dagster"):
            return
        from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable
        from dagster._core.instance.utils import RUNLESS_RUN_ID

        res = self.journal.results.setdefault("dagster", {"runs_deleted": [], "assets_wiped": [],
                                                          "runless_events_deleted": 0, "io_storage": [],
                                                          "sqlite_vacuumed": []})
        storage = self.instance.event_log_storage
        clm = self.instance.compute_log_manager
        logs_base = Path(getattr(clm, "_base_dir", self.home / "storage"))
        purged = purged_asset_keys(self.graph)
        runs = runs_touching(self.instance, self.touched_keys(), {self.run_id} | self.own_runs())
        done_ids = {r["run_id"] for r in res["runs_deleted"]}
        for run in runs:
            if run["run_id"] in done_ids:
                continue
            run_id = run["run_id"]
            files = []
            shard = Path(storage.path_for_shard(run_id)) if hasattr(storage, "path_for_shard") else None
            shard_files = [p for p in ([shard, shard.with_name(shard.name + "-wal"),
                                        shard.with_name(shard.name + "-shm")] if shard else []) if p.exists()]
            log_dir = logs_base / run_id
            log_files = sorted(p for p in log_dir.rglob("*") if p.is_file()) if log_dir.exists() else []
            for path in shard_files + log_files:
                files.append(self.file_item(path))
            self.instance.delete_run(run_id)
            for path in shard_files:
                shred_file(path)
            if log_dir.exists():
                shred_tree(log_dir)
                if hasattr(clm, "delete_logs"):
                    clm.delete_logs(prefix=[run_id])
            run["files"] = files
            run["deleted_at"] = _iso()
            res["runs_deleted"].append(run)
            self.journal.save()
        # check executions of kept assets recorded by the deleted runs
        deleted_ids = [r["run_id"] for r in res["runs_deleted"]]
        if deleted_ids and hasattr(storage, "index_connection"):
            with storage.index_connection() as conn:
                conn.execute(AssetCheckExecutionsTable.delete().where(AssetCheckExecutionsTable.c.run_id.in_(deleted_ids)))
        # events recorded outside runs (reported from the UI or the API), before
        # the wipe records its own (key only) events there
        keys_text = [k.to_string() for k in purged]
        if hasattr(storage, "run_connection") and keys_text:
            with storage.run_connection(RUNLESS_RUN_ID) as conn:
                result = conn.execute(SqlEventLogStorageTable.delete().where(
                    SqlEventLogStorageTable.c.asset_key.in_(keys_text)))
                res["runless_events_deleted"] += int(result.rowcount or 0)
        # the assets' own history (cached last events, check executions, mirrored events)
        for key in sorted(purged, key=lambda k: k.to_user_string()):
            if self.instance.has_asset_key(key):
                self.instance.wipe_assets([key])
                res["assets_wiped"].append(key.to_user_string())
        # IO-manager files of the purged assets
        io_base = self.home / "storage"
        for key in purged:
            folder = io_base.joinpath(*key.path)
            if folder.exists():
                items = [self.file_item(p) for p in sorted(folder.rglob("*")) if p.is_file()] if folder.is_dir() \
                    else [self.file_item(folder)]
                shred_tree(folder) if folder.is_dir() else shred_file(folder)
                res["io_storage"].extend(items)
        # rebuild every SQLite file so freed pages keep nothing
        for path in _sqlite_files(self.home):
            vacuum_sqlite(path)
            res["sqlite_vacuumed"].append(self.show(path))
        res["sqlite_vacuumed"] = sorted(set(res["sqlite_vacuumed"]))
        self.log.info(
            f"Dagster: {len(res['runs_deleted'])} run(s) deleted with their event logs and captured output, "
            f"{len(res['assets_wiped'])} asset(s) wiped, {len(res['sqlite_vacuumed'])} SQLite file(s) rebuilt"
        )
        self.journal.mark("dagster")

    # -- step 6: what the UI shows afterwards --
    def step_markers(self) -> None:
        if self.journal.done("markers"):
            return
        from dagster._serdes import deserialize_value

        now = _now()
        cert = self.show(self.html_path)
        runs_by_asset: dict[str, int] = {}
        for run in self.journal.results.get("dagster", {}).get("runs_deleted", []):
            for key in run["assets"]:
                runs_by_asset[key] = runs_by_asset.get(key, 0) + 1
        for item in self.journal.inventory["assets_purged"]:
            if item.get("marked_at"):
                continue
            metadata: dict[str, Any] = {
                "status": "détruit (destroyed)",
                "destroyed_at": dg.MetadataValue.timestamp(now),
                "destruction_certificate": dg.MetadataValue.path(cert),
                "study_id": self.study.study_id,
                "reason": item["reason"],
                "partitions_destroyed": dg.MetadataValue.json(item.get("partitions", [])),
                "tables_destroyed": dg.MetadataValue.json(item.get("tables", [])),
                "materializations_purged": item.get("materializations", 0),
                "runs_deleted": runs_by_asset.get(item["asset_key"], 0),
            }
            for key in ("first_materialized_at", "last_materialized_at"):
                if item.get(key):
                    metadata[key] = dg.MetadataValue.timestamp(dt.datetime.fromisoformat(item[key]))
            self.instance.report_runless_asset_event(dg.AssetObservation(
                asset_key=dg.AssetKey.from_user_string(item["asset_key"]),
                description=f"Données détruites le {_fr_datetime(now)} (convention art. 2) : voir {cert}",
                metadata=metadata,
            ))
            item["marked_at"] = _iso(now)
            self.journal.save()
        after_tables = self.kept_table_digests()
        for item in self.journal.inventory.get("restate", []):
            if item.get("restated_at"):
                continue
            metadata = dict(deserialize_value(item["metadata"]))
            metadata.update({
                "restated_after_destruction": True,
                "original_run_id": f"{item['original_run_id']} (supprimé)",
                "originally_materialized_at": dg.MetadataValue.timestamp(item["originally_materialized_at"]),
                "destruction_certificate": dg.MetadataValue.path(cert),
                "study_id": self.study.study_id,
            })
            table = metadata.get("dagster/table_name")
            table = str(getattr(table, "value", table) or "")
            if table in after_tables:
                metadata["dagster/row_count"], metadata["content_sha256"] = after_tables[table]
            for name, value in list(metadata.items()):
                path = getattr(value, "path", None) if isinstance(value, dg.PathMetadataValue) else None
                if path and Path(path).is_file():
                    metadata[f"{name}_sha256"] = sha256_file(Path(path))
            self.instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key=dg.AssetKey.from_user_string(item["asset_key"]),
                partition=item["partition"],
                description=(item["description"] + " " if item["description"] else "")
                + "(réenregistré après la destruction des données de l'étude : le run d'origine touchait "
                "des données confidentielles et a été supprimé)",
                metadata=metadata,
            ))
            item["restated_at"] = _iso()
            self.journal.save()
        self.journal.mark("markers")

    def kept_table_digests(self) -> dict[str, tuple[int, str]]:
        if not self.db.exists():
            return {}
        out = {}
        with self.lock():
            con = duckdb.connect(str(self.db), read_only=True)
            try:
                for schema, table in con.execute(
                    "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal"
                ).fetchall():
                    out[f"{schema}.{table}"] = table_digest(con, _qualified(schema, table))
            finally:
                con.close()
        return out

    # -- step 7: the residue scan --
    def scan_roots(self) -> list[Path]:
        roots = [self.paths.root, self.paths.raw, self.db.parent, self.paths.reports, self.home]
        env_home = os.environ.get("DAGSTER_HOME")
        if env_home:
            roots.append(Path(env_home))
        out: list[Path] = []
        for root in roots:
            root = root.resolve()
            if root.exists() and not any(root.is_relative_to(r) for r in out):
                out = [r for r in out if not r.is_relative_to(root)] + [root]
        return out

    def scan(self, sentinels: list[Sentinel]) -> ScanReport:
        report = residue_scan(self.scan_roots(), sentinels, display=self.show)
        if self.db.exists():
            with self.lock():
                try:
                    n, hits = scan_duckdb_tables(self.db, sentinels, self.show(self.db))
                except duckdb.Error as exc:
                    n, hits = 0, []
                    report.unreadable.append(f"{self.show(self.db)} ({exc.__class__.__name__})")
            report.tables_scanned = n
            report.hits.extend(hits)
        return report

    def step_scan(self) -> ScanReport:
        sentinels = self.given_sentinels() + [Sentinel(t, "dérivé") for t in self.derived]
        report = self.scan(sentinels)
        self.journal.data["scan"] = report.to_dict()
        first = self.journal.results.get("derived_sentinels_first_attempt", 0)
        self.journal.data["scan"]["derived_in_earlier_attempts"] = first if len(self.journal.data["attempts"]) > 1 else 0
        self.journal.save()
        if not sentinels:
            self.log.warning("residue scan: no sentinel to search for (none given, none derived)")
        self.log.info(
            f"residue scan: {report.files_scanned} file(s), {report.bytes_scanned} bytes, "
            f"{report.tables_scanned} table(s), {len(sentinels)} sentinel(s): "
            + ("no residue" if report.clean else f"{sum(h['count'] for h in report.hits)} HIT(S)")
        )
        return report

    # -- step 8: the certificate --
    def step_certificate(self, scan: ScanReport) -> Outcome:
        finished = _now()
        cert = build_certificate(self, scan, finished)
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(self.json_path, cert)
        tmp = self.html_path.with_name(self.html_path.name + ".tmp")
        tmp.write_text(render_certificate_html(cert), encoding="utf-8")
        os.replace(tmp, self.html_path)
        if scan.clean:
            self.journal.data["completed_at"] = _iso(finished)
            self.journal.mark("certificate")
            _write_json_atomic(marker_path(self.study.study_id, self.paths), {
                "study_id": self.study.study_id,
                "destroyed_at": _iso(finished),
                "certificate_html": self.show(self.html_path),
                "certificate_json": self.show(self.json_path),
                "run_id": self.run_id,
            })
        return Outcome(self.study, self.journal, scan, self.html_path, self.json_path, certificate=cert)


def warehouse_inventory_empty() -> dict:
    return {"tables_destroyed": [], "tables_kept": [], "tables_reduced": [], "views_destroyed": [], "views_kept": []}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid()) if hasattr(os, "getuid") else "?"


# ---- the certificate -------------------------------------------------------------------------


def _paris(moment: dt.datetime) -> dt.datetime:
    try:
        from zoneinfo import ZoneInfo

        return moment.astimezone(ZoneInfo("Europe/Paris"))
    except Exception:  # no tz database: stay in UTC
        return moment.astimezone(dt.timezone.utc)


def _fr_date(day: dt.date | None) -> str:
    if day is None:
        return "non renseignée"
    return f"{day.day}{'er' if day.day == 1 else ''} {FR_MONTHS[day.month - 1]} {day.year}"


def _fr_datetime(moment: dt.datetime) -> str:
    local = _paris(moment)
    zone = "UTC" if local.tzinfo is dt.timezone.utc else "heure de Paris"
    return f"{_fr_date(local.date())} à {local.hour:02d} h {local.minute:02d} min {local.second:02d} s ({zone})"


def _fr_int(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")


def build_certificate(d: Destruction, scan: ScanReport, finished: dt.datetime) -> dict:
    """The procès-verbal as data (its JSON twin); the HTML is rendered from it."""
    journal = d.journal.data
    inv = journal["inventory"]
    res = journal["results"]
    study = d.study
    first = journal["attempts"][0] if journal["attempts"] else {}
    dagster_res = res.get("dagster", {})
    wh = inv.get("warehouse") or warehouse_inventory_empty()
    reports_after = {}
    for item in inv.get("reports_kept", []):
        path = d.resolve(item["path"])
        reports_after[item["path"]] = sha256_file(path) if path.exists() else ""
    status = "TERMINÉE" if scan.clean else "ÉCHEC"
    return {
        "document": "Procès-verbal de destruction des données",
        "fichiers": {"html": d.show(d.html_path), "json": d.show(d.json_path)},
        "status": status,
        "statut_explication": (
            "Destruction terminée ; le contrôle de non-persistance n'a trouvé aucune trace des données."
            if scan.clean else
            "ÉCHEC : des traces des données ont été trouvées après la destruction. Ce document NE DOIT PAS "
            "être transmis à la CAF tant que la destruction n'a pas été reprise avec succès."
        ),
        "etude": {
            "identifiant": study.study_id,
            "titre": study.title,
            "responsable": study.responsible,
            "statut": study.status,
            "date_de_publication": study.published_on.isoformat() if study.published_on else None,
        },
        "convention": {
            "parties": study.parties,
            "signee_le": str(study.convention.get("signed_on") or ""),
            "decision_du": str(study.convention.get("decision_on") or ""),
            "signataires": list(study.convention.get("signatories") or []),
            "articles": {
                "2": "Le partenaire s'engage à détruire les données à l'issue de l'étude menée.",
                "7": "La présente convention prendra fin à la publication de l'étude.",
            },
        },
        "operation": {
            "debut": first.get("started_at", ""),
            "fin": _iso(finished),
            "executee_par": first.get("executed_by", _os_user()),
            "operateur_declare": d.operator or first.get("operator", ""),
            "machine": first.get("host", socket.gethostname()),
            "run_dagster": d.run_id,
            "tentatives": journal["attempts"],
            "methode": {
                "fichiers": "écrasement du contenu par une passe d'octets aléatoires, écriture forcée sur le "
                            "disque (fsync), puis suppression",
                "base_duckdb": "copie des seules tables conservées dans un fichier neuf ; l'ancien fichier est "
                               "écrasé puis remplacé par la copie, de sorte que les pages libérées ne gardent rien",
                "dagster": "suppression des runs ayant lu ou produit les données (événements, journaux, sorties "
                           "capturées), effacement de l'historique des actifs, reconstruction (VACUUM) des bases SQLite",
            },
        },
        "detruit": {
            "fichiers_bruts": inv.get("raw_files", []),
            "dossiers_supprimes": res.get("raw_folders_removed", []),
            "tables": wh["tables_destroyed"],
            "vues": wh["views_destroyed"],
            "colonnes_retirees": [
                {"table": t["table"], "colonnes": t["columns_removed"]} for t in wh["tables_reduced"]
            ],
            "fichier_duckdb": {
                "avant": inv.get("warehouse_file"),
                "apres": res.get("warehouse", {}).get("after"),
            },
            "dagster": {
                "actifs_purges": inv.get("assets_purged", []),
                "runs_supprimes": dagster_res.get("runs_deleted", []),
                "evenements_hors_run_supprimes": dagster_res.get("runless_events_deleted", 0),
                "fichiers_io_manager": dagster_res.get("io_storage", []),
                "bases_sqlite_reconstruites": dagster_res.get("sqlite_vacuumed", []),
            },
        },
        "conserve": {
            "tables": wh["tables_kept"],
            "vues": wh["views_kept"],
            "tables_reduites": wh["tables_reduced"],
            "rapports": [dict(item, sha256_apres=reports_after.get(item["path"], "")) for item in inv.get("reports_kept", [])],
            "autres": [
                {"element": "config/study.yaml et la configuration du projet",
                 "motif": "références de l'étude et de la convention ; aucune donnée de la CAF"},
                {"element": "historique Dagster des actifs publiés",
                 "motif": "réenregistré (empreintes, nombres de lignes) pour garder la traçabilité des résultats publiés"},
                {"element": d.show(d.html_path) + ", " + d.show(d.json_path), "motif": CERTIFICATE_REASON},
                {"element": d.show(lifecycle_dir(d.paths)),
                 "motif": "journal de la destruction (chemins, tailles, empreintes, sans contenu)"},
            ],
        },
        "controle_de_non_persistance": dict(
            scan.to_dict(),
            explication=(
                "Après la destruction, chaque octet de chaque fichier des dossiers ci-dessus (y compris le "
                "contenu décompressé des archives zip/xlsx et gzip) a été recherché pour les valeurs sentinelles, "
                "sous les encodages listés ; les tables restantes de la base DuckDB ont en outre été interrogées. "
                "Les valeurs « dérivées » sont des textes distinctifs tirés des données avant leur destruction, "
                "gardés en mémoire seulement et jamais écrits ; ce document n'en donne que le nombre."
            ),
            derived_in_earlier_attempts=journal.get("scan", {}).get("derived_in_earlier_attempts", 0),
        ),
        "limites": [
            "Les copies des fichiers hors de ce projet (messagerie, dossier Téléchargements, sauvegardes, "
            "supports amovibles) ne sont pas couvertes par ce traitement : elles doivent être détruites "
            "séparément et leur destruction attestée ci-dessous.",
            "Sur un disque SSD ou un système de fichiers à copie sur écriture, l'écrasement ne garantit pas "
            "l'effacement physique des anciens blocs ; le chiffrement du disque reste la protection de référence.",
        ],
    }


def _table(headers: list[str], rows: list[list[Any]], empty: str = "Aucun.", mono: tuple[int, ...] = ()) -> str:
    """An HTML table; columns whose index is in `mono` (paths, hashes) are set in a monospace font."""
    if not rows:
        return f"<p class='empty'>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f"<td{' class=m' if i in mono else ''}>{html.escape(str(c)) if c is not None else ''}</td>"
            for i, c in enumerate(row)
        ) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fr_short(iso: str) -> str:
    """'2026-11-29T17:55:38+00:00' -> '29/11/2026 18:55' (Paris)."""
    if not iso:
        return ""
    local = _paris(dt.datetime.fromisoformat(iso))
    return local.strftime("%d/%m/%Y %H:%M")


def _fr_bytes(n: int) -> str:
    for unit, size in (("Go", 1 << 30), ("Mo", 1 << 20), ("ko", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}".replace(".", ",")
    return f"{n} octets"


def render_certificate_html(cert: dict) -> str:
    """The procès-verbal as a self-contained, printable HTML page (French)."""
    e = html.escape
    etude, conv, op = cert["etude"], cert["convention"], cert["operation"]
    det, kept, scan = cert["detruit"], cert["conserve"], cert["controle_de_non_persistance"]
    dag = det["dagster"]
    parties = conv["parties"]
    provider, partner = str(parties.get("data_provider", "la CAF")), str(parties.get("partner", "le partenaire"))
    ok = cert["status"] == "TERMINÉE"
    signed = _fr_date(_date(conv["signee_le"], "signed_on"))
    published = _fr_date(_date(etude["date_de_publication"], "published_on"))
    start = dt.datetime.fromisoformat(op["debut"]) if op["debut"] else None
    end = dt.datetime.fromisoformat(op["fin"])
    wh_before, wh_after = det["fichier_duckdb"]["avant"], det["fichier_duckdb"]["apres"]
    run_files = [f for r in dag["runs_supprimes"] for f in r.get("files", [])] + list(dag["fichiers_io_manager"])
    n_hits = sum(h["count"] for h in scan["hits"])

    summary_rows = [
        ["Fichiers reçus (dossier raw/)", len(det["fichiers_bruts"]),
         _fr_bytes(sum(f["size_bytes"] for f in det["fichiers_bruts"]))],
        ["Tables de la base de données", len(det["tables"]),
         f"{_fr_int(sum(t['rows'] for t in det['tables']))} lignes"],
        ["Vues de la base de données", len(det["vues"]), ""],
        ["Actifs de l'orchestrateur dont l'historique est effacé", len(dag["actifs_purges"]),
         f"{_fr_int(sum(a.get('materializations', 0) for a in dag['actifs_purges']))} matérialisations"],
        ["Exécutions (runs) de l'orchestrateur supprimées", len(dag["runs_supprimes"]),
         "événements, journaux et sorties capturées"],
        ["Fichiers de l'orchestrateur écrasés puis supprimés", len(run_files),
         _fr_bytes(sum(f["size_bytes"] for f in run_files))],
    ]
    raw_rows = [[f["path"], _fr_int(f["size_bytes"]), f["sha256"], _fr_short(f.get("destroyed_at", ""))]
                for f in det["fichiers_bruts"]]
    reasons = sorted({t["reason"] for t in det["tables"]})
    table_rows = [[t["table"], _fr_int(t["rows"]), t["columns"], t["sha256"], chr(ord("a") + reasons.index(t["reason"]))]
                  for t in det["tables"]]
    kept_rows = [[t["table"], _fr_int(t["rows"]), t["sha256"],
                  "identique" if t.get("sha256_after") == t["sha256"] else "—", t["reason"]] for t in kept["tables"]]
    kept_rows += [[f"{t['table']} (réduite aux colonnes {', '.join(t['columns_kept'])})", _fr_int(t["rows"]),
                   t.get("sha256_after", ""), "réduite", t["reason"]] for t in kept["tables_reduites"]]
    report_rows = [[r["path"], _fr_bytes(r["size_bytes"]), r["sha256"],
                    "identique" if r["sha256_apres"] == r["sha256"] else "MODIFIÉ", r["reason"]]
                   for r in kept["rapports"]]
    asset_rows = [[a["asset_key"], a["reason"], a.get("materializations", 0), ", ".join(a.get("partitions", [])),
                   _fr_short(a.get("first_materialized_at", "")), _fr_short(a.get("last_materialized_at", ""))]
                  for a in dag["actifs_purges"]]
    run_rows = [[r["run_id"], _fr_short(r["started_at"]), r["status"], ", ".join(r["assets"]), len(r.get("files", []))]
                for r in dag["runs_supprimes"]]
    file_rows = [[f["path"], _fr_int(f["size_bytes"]), f["sha256"]] for f in run_files]

    status_box = (
        "<div class='status ok'>Destruction TERMINÉE — aucune trace des données n'a été trouvée</div>" if ok else
        f"<div class='status ko'>ÉCHEC — {n_hits} trace(s) des données subsistent. "
        "NE PAS TRANSMETTRE ce document : reprendre la destruction.</div>"
    )
    verdict = ("<b class='ok'>Aucune occurrence trouvée.</b>" if ok else
               f"<b class='ko'>{n_hits} occurrence(s) trouvée(s) : la destruction n'est PAS terminée.</b>")
    derived_note = (f" (et {scan['derived_in_earlier_attempts']} lors de la première exécution, interrompue)"
                    if scan.get("derived_in_earlier_attempts") else "")
    return f"""<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8">
<title>Procès-verbal de destruction des données — {e(etude['identifiant'])}</title>
<style>
body {{ font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10.5pt; margin: 2em auto; max-width: 62em; color: #111; line-height: 1.4; }}
h1 {{ font-size: 17pt; margin: 0.3em 0; }} h2 {{ font-size: 13pt; border-bottom: 1px solid #999; margin-top: 1.6em; }}
h3 {{ font-size: 11pt; margin-bottom: 0.3em; }}
table {{ border-collapse: collapse; width: 100%; margin: 0.4em 0 0.8em; }}
th, td {{ border: 1px solid #bbb; padding: 3px 6px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }}
thead th, table.kv th {{ background: #f1f1f1; }} table.kv th {{ width: 15em; }}
td.m {{ font-family: "DejaVu Sans Mono", monospace; font-size: 8.5pt; word-break: break-all; }}
.status {{ padding: 0.6em 1em; font-weight: bold; margin: 1em 0; border: 2px solid; }}
.ok {{ color: #155724; border-color: #155724; }} .ko {{ color: #a00; border-color: #a00; }}
.empty, .note {{ color: #444; font-size: 9.5pt; }} .sign {{ margin-top: 1.5em; line-height: 3em; }}
@media print {{ body {{ margin: 0; max-width: none; }} h2, h3 {{ page-break-after: avoid; }} tr {{ page-break-inside: avoid; }}
  .annexes {{ page-break-before: always; }} }}
</style></head>
<body>
<p>{e(partner)}</p>
<h1>Procès-verbal de destruction des données</h1>
<p>Étude « {e(etude['titre'])} » — convention de mise à disposition de données avec la {e(provider)}</p>
{status_box}

<h2>1. Objet</h2>
<p>La convention conclue entre la <b>{e(provider)}</b> et la <b>{e(partner)}</b>, signée le {e(signed)}, prévoit
à son article 2 que le partenaire « s'engage à détruire les données à l'issue de l'étude menée », et à son article 7
qu'elle « prendra fin à la publication de l'étude ». L'étude a été publiée le <b>{e(published)}</b>.</p>
<p>Le présent procès-verbal constate la destruction des données reçues de la CAF et de toutes les données qui en
ont été tirées, à l'exception des résultats publiés énumérés à la section 5, et le contrôle qui a suivi.</p>

<h2>2. Références</h2>
<table class="kv">
<tr><th>Étude</th><td>{e(etude['titre'])} (identifiant <code>{e(etude['identifiant'])}</code>)</td></tr>
<tr><th>Responsable de l'étude</th><td>{e(etude['responsable'])}</td></tr>
<tr><th>Fournisseur des données</th><td>{e(provider)}</td></tr>
<tr><th>Partenaire</th><td>{e(partner)}</td></tr>
<tr><th>Convention</th><td>signée le {e(signed)}{('; décision du ' + e(_fr_date(_date(conv['decision_du'], 'decision_on')))) if conv['decision_du'] else ''}</td></tr>
<tr><th>Signataires</th><td>{'<br>'.join(e(s) for s in conv['signataires'])}</td></tr>
<tr><th>Publication de l'étude</th><td>{e(published)}</td></tr>
</table>

<h2>3. Opération</h2>
<table class="kv">
<tr><th>Début</th><td>{e(_fr_datetime(start)) if start else ''}</td></tr>
<tr><th>Fin</th><td>{e(_fr_datetime(end))}</td></tr>
<tr><th>Exécutée par</th><td>compte informatique <code>{e(op['executee_par'])}</code> sur le poste <code>{e(op['machine'])}</code>{(' ; demandée par : ' + e(op['operateur_declare'])) if op['operateur_declare'] else ''}</td></tr>
<tr><th>Déroulement</th><td>{len(op['tentatives'])} exécution(s) ; une exécution interrompue reprend là où elle s'était
arrêtée (journal des étapes). Référence de l'exécution finale : <code>{e(op['run_dagster'])}</code></td></tr>
<tr><th>Méthode</th><td><b>Fichiers</b> : {e(op['methode']['fichiers'])}.<br><b>Base de données</b> : {e(op['methode']['base_duckdb'])}.<br>
<b>Orchestrateur (Dagster)</b> : {e(op['methode']['dagster'])}.</td></tr>
</table>

<h2>4. Éléments détruits</h2>
{_table(["Nature", "Nombre", "Volume"], summary_rows)}
<p class="note">Chaque élément est identifié par son empreinte SHA-256 calculée avant destruction : elle permet de
vérifier qu'il s'agit bien du fichier ou de la table reçus, sans en révéler le contenu.</p>
<h3>4.1 Fichiers reçus de la CAF et des autres producteurs (dossier raw/)</h3>
{_table(["Fichier", "Taille (octets)", "Empreinte SHA-256 avant destruction", "Détruit le"], raw_rows, mono=(0, 2))}
{('<p>Sous-dossiers supprimés : ' + e(', '.join(det['dossiers_supprimes'])) + '</p>') if det['dossiers_supprimes'] else ''}
<h3>4.2 Tables de la base de données (DuckDB)</h3>
{_table(["Table", "Lignes", "Colonnes", "Empreinte SHA-256 du contenu", "Motif"], table_rows, mono=(0, 3))}
<p class="note">Motifs : {' ; '.join(f'({chr(ord("a") + i)}) {e(r)}' for i, r in enumerate(reasons)) or '—'}.
Empreinte du contenu : SHA-256 des lignes de la table converties en texte et triées.</p>
{('<p>Vues supprimées : ' + e(', '.join(v['view'] for v in det['vues'])) + '</p>') if det['vues'] else ''}
{''.join('<p>Colonnes retirées de ' + e(c['table']) + ' : ' + e(', '.join(c['colonnes'])) + '.</p>' for c in det['colonnes_retirees'] if c['colonnes'])}
<h3>4.3 Fichier de la base de données, réécrit</h3>
{_table(["", "Fichier", "Taille (octets)", "Empreinte SHA-256"],
        [[label, f["path"], _fr_int(f["size_bytes"]), f["sha256"]] for label, f in (("avant", wh_before), ("après", wh_after)) if f],
        "Aucune base de données.", mono=(1, 3))}
<h3>4.4 Historique de l'orchestrateur (Dagster)</h3>
<p>{len(dag['actifs_purges'])} actifs ont vu leur historique effacé (leur existence reste visible dans l'interface,
marquée « détruit » avec la date et la référence du présent document) ; {len(dag['runs_supprimes'])} exécutions qui
avaient lu ou produit ces données ont été supprimées avec leurs événements, leurs journaux et leurs sorties
capturées ; {len(run_files)} fichiers ont été écrasés puis supprimés ; {dag['evenements_hors_run_supprimes']}
événement(s) enregistré(s) hors exécution ont été supprimés ; {len(dag['bases_sqlite_reconstruites'])} bases SQLite
ont été reconstruites (VACUUM). Le détail figure en annexe.</p>

<h2>5. Éléments conservés et motifs</h2>
{_table(["Table", "Lignes", "Empreinte SHA-256", "Après destruction", "Motif"], kept_rows, "Aucune table conservée.", mono=(2,))}
{('<p>Vues conservées : ' + e(', '.join(v['view'] for v in kept['vues'])) + '</p>') if kept['vues'] else ''}
{_table(["Document", "Taille", "Empreinte SHA-256", "Après destruction", "Motif"], report_rows, "Aucun document.", mono=(0, 2))}
{_table(["Élément", "Motif"], [[o['element'], o['motif']] for o in kept['autres']])}

<h2>6. Contrôle de non-persistance</h2>
<p>{e(scan['explication'])}</p>
<table class="kv">
<tr><th>Dossiers parcourus</th><td>{'<br>'.join('<code>' + e(r) + '</code>' for r in scan['roots'])}</td></tr>
<tr><th>Volume lu</th><td>{_fr_int(scan['files_scanned'])} fichiers ({_fr_bytes(scan['bytes_scanned'])}), dont
{_fr_int(scan['archive_members_scanned'])} éléments d'archives décompressés ; {scan['tables_scanned']} table(s) interrogée(s)</td></tr>
<tr><th>Valeurs recherchées</th><td>{scan['sentinels_given']} fournie(s) par l'opérateur ; {scan['sentinels_derived']}
dérivée(s) des données{e(derived_note)}</td></tr>
<tr><th>Encodages</th><td>{e(', '.join(scan['encodings']))}</td></tr>
<tr><th>Résultat</th><td>{verdict}</td></tr>
</table>
{_table(["Emplacement", "Encodage", "Origine de la valeur", "Occurrences"],
        [[h["path"], h["form"], h["origin"], h["count"]] for h in scan["hits"]], "", mono=(0,)) if scan['hits'] else ''}
{('<p>Fichiers illisibles : ' + e(', '.join(scan['unreadable'])) + '</p>') if scan['unreadable'] else ''}

<h2>7. Limites et attestation</h2>
<ul>{''.join('<li>' + e(x) + '</li>' for x in cert['limites'])}</ul>
<p>Je soussigné(e), responsable de l'étude pour le partenaire, atteste que les données mises à disposition par la
{e(provider)} au titre de la convention ont été détruites comme décrit ci-dessus, ainsi que leurs copies éventuelles
hors de ce projet.</p>
<div class="sign">Fait à ...................................., le ....................<br>
Nom, qualité et signature :</div>

<div class="annexes">
<h2>Annexe A — Actifs de l'orchestrateur dont l'historique a été effacé</h2>
{_table(["Actif", "Motif", "Matérialisations", "Partitions", "Première", "Dernière"], asset_rows, mono=(0,))}
<h2>Annexe B — Exécutions supprimées</h2>
{_table(["Exécution", "Début", "Statut", "Actifs concernés", "Fichiers"], run_rows, mono=(0,))}
<h2>Annexe C — Fichiers de l'orchestrateur écrasés puis supprimés</h2>
{_table(["Fichier", "Taille (octets)", "Empreinte SHA-256 avant destruction"], file_rows, mono=(0, 2))}
</div>
<p class="note">Document produit par le pipeline de l'étude ; son double au format JSON ({e(cert['fichiers']['json'])})
contient les mêmes informations. Heures en heure de Paris.</p>
</body></html>
"""
