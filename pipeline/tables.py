"""The registry of the tables the pipeline writes, declared once in `config/tables.yaml`:
their names, columns (type, allowed values, a French and an English description each) and
primary keys. The table writer (`pipeline.table_writer`) enforces them; the code takes the
names below and the keys from `primary_key`, never a literal of its own.

What belongs here: reading that file, the names, the column lists and keys the code needs
(the published table's, the staging tables'), and the column schemas shown in the Dagster UI
(`dagster/column_schema`, every column described): declared ones for the asset
definitions, and the ones of a table as written, checked against the declaration (a
column the declaration lacks fails loudly: a reviewer must never meet an undescribed
column). The raw copies' columns are the files' own labels, described from
`config/catalog.yaml`.

Nothing here reads a value of the data: names and types only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipeline.config_models.base import read_yaml, validated
from pipeline.config_models.governance import RAW_PATTERN, Table, TablesFile
from pipeline.errors import PipelineError
from pipeline.settings import PACKAGE_ROOT, project_paths

STAGING_PATTERN = "staging.*"

# The tables the code names (each declared in config/tables.yaml; tests/test_table_registry.py
# holds the two together). The published results, and what the masking and the audit write:
PUBLISHED_TABLE = "published.indicators"
CANDIDATE_TABLE = "confidential.published_candidate"
MASKING_LOG_TABLE = "confidential.masking_log"
MASKING_MEMO_TABLE = "confidential.masking_memo"
AUDIT_MEMO_TABLE = "confidential.audit_memo"
# the warehouse (pipeline/defs/warehouse.py)
INPUTS_TABLE = "confidential.indicator_inputs"
INDICATORS_TABLE = "confidential.indicators"
DEFINITIONS_TABLE = "confidential.indicator_definitions"
EVOLUTION_TABLE = "confidential.indicators_evolution"
WIDE_VIEW_PATTERN = "confidential.indicators_wide_*"
# what was received (kept, reduced, when the study closes)
LEDGER_TABLE = "lineage.ingest_ledger"
# the publication history (pipeline/releases.py)
RELEASES_TABLE = "published.releases"
RELEASE_INDICATORS_TABLE = "published.release_indicators"
RELEASE_ZONES_TABLE = "published.release_zones"
RELEASE_VALUES_TABLE = "confidential.release_values"


class TablesError(PipelineError, ValueError):
    pass


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    fr: str
    en: str
    allowed: tuple[str, ...] | None = None  # the only values (an empty cell aside), if coded

    @property
    def description(self) -> str:
        """What the UI shows: the French, then the English."""
        return f"{self.fr} — EN: {self.en}"


def _path(config: Path | None = None) -> Path:
    """The project's description, else the one shipped beside the code (the columns are the
    code's; a project may reword their descriptions)."""
    path = (config or project_paths().config) / "tables.yaml"
    return path if path.exists() else PACKAGE_ROOT / "config" / "tables.yaml"


@cache
def _load(path: Path, mtime: float) -> dict[str, Table]:
    doc = read_yaml(path, TablesError, "the description of the tables' columns is missing")
    return dict(validated(TablesFile, doc, path, TablesError).tables)


def load_tables(config: Path | None = None) -> dict[str, Table]:
    """The tables of config/tables.yaml (of `config`, else the project's), checked by their model."""
    path = _path(config)
    return _load(path, path.stat().st_mtime if path.exists() else 0.0)


def _entry(table: str) -> tuple[str, Table]:
    """The declaration of `table`: its own, else its schema's pattern (`staging.*`) or its
    family's (`confidential.indicators_wide_*`)."""
    tables = load_tables()
    if table in tables:
        return table, tables[table]
    for pattern in sorted((p for p in tables if p.endswith("*")), key=len, reverse=True):
        if table.startswith(pattern[:-1]):
            return pattern, tables[pattern]
    raise TablesError(f"{_path()}: the table {table} is not described (add it under `tables`)")


def is_declared(table: str) -> bool:
    try:
        _entry(table)
    except TablesError:
        return False
    return True


def declaration(table: str) -> Table:
    """The entry of `table` in config/tables.yaml (of `same_columns_as` for the columns and key)."""
    _, entry = _entry(table)
    return _entry(entry.same_columns_as)[1] if entry.same_columns_as else entry


def is_view(table: str) -> bool:
    return _entry(table)[1].view


def primary_key(table: str) -> list[str]:
    """The columns whose values identify a row of `table` (empty: no key declared)."""
    return list(declaration(table).primary_key)


def table_description(table: str) -> tuple[str, str]:
    """(fr, en) description of a table."""
    _, entry = _entry(table)
    return (entry.description.fr, entry.description.en) if entry.description else ("", "")


def columns(table: str) -> list[Column]:
    """The declared columns of a table, in order."""
    name, entry = _entry(table)
    if entry.same_columns_as:
        return columns(entry.same_columns_as)
    out = []
    for column, declared in entry.columns.items():
        spec = declared.model_dump(exclude_none=True) if declared else {}
        if "same_as" in spec:
            spec = {**_column(spec.pop("same_as"), column), **spec}
        for key in ("type", "fr", "en"):
            if not str(spec.get(key, "")).strip():
                raise TablesError(f"{_path()}: {name}.{column} has no `{key}`")
        allowed = tuple(spec["allowed"]) if spec.get("allowed") is not None else None
        out.append(Column(column, spec["type"], spec["fr"].strip(), spec["en"].strip(), allowed))
    return out


def _column(table: str, column: str) -> dict:
    for c in columns(table):
        if c.name == column:
            return {"type": c.type, "fr": c.fr, "en": c.en, "allowed": c.allowed}
    raise TablesError(f"{_path()}: {table} has no column {column} to refer to")


def column_names(table: str) -> list[str]:
    return [c.name for c in columns(table)]


def _schema(cols: list[Column]):
    import dagster as dg

    return dg.TableSchema(columns=[dg.TableColumn(name=c.name, type=c.type, description=c.description) for c in cols])


def column_schema(table: str):
    """The declared columns as a Dagster table schema, each column described."""
    return _schema(columns(table))


def column_schema_metadata(table: str) -> dict:
    """An asset's definition metadata: its table's name and described column schema."""
    return {"dagster/table_name": table, "dagster/column_schema": column_schema(table)}


def series_column(table: str, name: str) -> Column | None:
    """A column `<indicator>_<year>` of a wide view, described from its `series_columns`."""
    series = declaration(table).series_columns
    head, _, year = name.rpartition("_")
    if series is None or not head or not (year.isdigit() and len(year) == 4):
        return None
    return Column(name, series.type, series.fr.format(indicator=head, year=year).strip(),
                  series.en.format(indicator=head, year=year).strip())


def described_schema(con, table: str):
    """The schema of a table as written (DuckDB's types), every column described from the
    declaration; a column the declaration lacks fails with a message saying where to add it."""
    declared = {c.name: c for c in columns(table)}
    written = con.execute(f"DESCRIBE {table}").fetchall()
    for row in written:
        if row[0] not in declared and series_column(table, row[0]):
            declared[row[0]] = series_column(table, row[0])
    undeclared = [row[0] for row in written if row[0] not in declared]
    if undeclared:
        raise TablesError(f"{table} has column(s) {undeclared} that {_path()} does not describe: describe them there")
    return _schema([Column(row[0], str(row[1]), declared[row[0]].fr, declared[row[0]].en) for row in written])


# -- the raw copies: the files' own columns -------------------------------------------------

def _raw_roles(source) -> dict[str, Column]:
    """Each label a vintage of `source` declares, described by what it holds."""
    _, entry = _entry(RAW_PATTERN)
    template, roles = entry.file_column, entry.roles

    def role(key: str) -> tuple[str, str]:
        return roles[key].fr, roles[key].en

    out: dict[str, Column] = {}

    def add(label: str, fr_meaning: str, name: str) -> None:
        if label not in out:
            out[label] = Column(label, "VARCHAR", template.fr.format(label=fr_meaning, name=name),
                                template.en.format(label=fr_meaning, name=name))

    for vintage in source.all_vintages:
        for label, canonical in vintage.columns.items():
            if canonical in ("code_zone", "nom_zone"):
                add(label, role(canonical)[0], role(canonical)[1])
            elif label == vintage.year_column:
                add(label, role("period")[0], role("period")[1])
            else:
                spec = source.measures.get(canonical)
                add(label, spec.label if spec else canonical, canonical)
        if vintage.long:
            long = vintage.long
            for label, key in ((long.period, "period"), (long.measure, "measure_code"), (long.value, "value"),
                               (long.status, "status")):
                if label:
                    add(label, role(key)[0], role(key)[1])
        for label in vintage.filters:
            add(label, role("filter")[0], role("filter")[1])
    return out


def raw_columns(source, labels: list[str] | None = None) -> list[Column]:
    """The columns of a raw copy of `source`: `labels` as written (a file's own, in its
    order), or every label the catalog declares for it; then the provenance columns."""
    declared = _raw_roles(source)
    _, entry = _entry(RAW_PATTERN)
    provenance = columns(RAW_PATTERN)
    names = {c.name for c in provenance}
    undeclared = entry.undeclared_column
    if labels is None:
        labels = list(declared)
    out = [declared.get(label) or Column(label, "VARCHAR", undeclared.fr, undeclared.en)
           for label in labels if label not in names]
    return out + provenance


def raw_column_schema(source, labels: list[str] | None = None):
    return _schema(raw_columns(source, labels))
