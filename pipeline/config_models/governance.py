"""The models of `config/governance.yaml` (owner and classifications of each stage) and of
`config/tables.yaml` (the registry of every table the pipeline writes: columns with their
types and allowed values, the primary key, each column described)."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipeline.config_models.base import Ident, Model, Switch, Text

RAW_PATTERN = "raw.*"  # the raw copies: the files' own columns, described from the catalog


class Rule(Model):
    classification: Text = Field(description="One of the classifications above.")
    articles: tuple[Text, ...] = Field(default=(), description="The convention articles that govern it.")


class GovernanceFile(Model):
    """config/governance.yaml: who owns each stage, how its data are classified."""

    owner: Text = Field(description="The owner of every asset (team:...).")
    classifications: dict[str, Text] = Field(min_length=1, description="Each classification and what it means.")
    groups: dict[str, Rule] = Field(default_factory=dict, description="Per stage (Dagster asset group).")
    assets: dict[str, Rule] = Field(default_factory=dict, description="Exceptions to their group.")

    @model_validator(mode="after")
    def _declared(self) -> GovernanceFile:
        for kind, rules in (("groups", self.groups), ("assets", self.assets)):
            for name, rule in rules.items():
                if rule.classification not in self.classifications:
                    raise ValueError(f"{kind}.{name}: unknown classification {rule.classification!r} "
                                     f"(one of: {', '.join(self.classifications)})")
        return self


class Bilingual(Model):
    """A text in French and in English (for a compliance reviewer)."""

    fr: Text
    en: Text


class Column(Model):
    type: Text | None = Field(default=None, description="DuckDB type, enforced when the table is written.")
    allowed: tuple[Text, ...] | None = Field(
        default=None, description="The only values the column may hold (an empty cell aside), checked at every write.")
    fr: Text | None = None
    en: Text | None = None
    same_as: str | None = Field(default=None, description="A table whose column of the same name this one is.")


class Table(Model):
    description: Bilingual | None = None
    primary_key: tuple[Ident, ...] = Field(
        default=(), description="The columns whose values identify a row: never twice in the table.")
    view: Switch = Field(default=False, description="A view of other tables: declared, never written as a table.")
    same_columns_as: str | None = Field(
        default=None, description="Another table whose columns (and primary key) it has exactly.")
    columns: dict[str, Column | None] = Field(default_factory=dict)
    # a wide view: one more column per indicator (or allocataires) and year, `<id>_<year>`
    series_columns: Column | None = Field(
        default=None, description="A view's columns <indicator>_<year>: their type, fr and en ({indicator}, {year}).")
    # `raw.*` only: how the files' own columns are described
    file_column: Bilingual | None = None
    roles: dict[str, Bilingual] = Field(default_factory=dict)
    undeclared_column: Bilingual | None = None

    @model_validator(mode="after")
    def _keyed(self) -> Table:
        if self.same_columns_as and (self.columns or self.primary_key):
            raise ValueError("same_columns_as takes the other table's columns and key: no `columns` or "
                             "`primary_key` beside it")
        missing = [c for c in self.primary_key if not self.same_columns_as and c not in self.columns]
        if missing:
            raise ValueError(f"primary_key names {', '.join(missing)}, not among the table's columns")
        if self.view and self.primary_key:
            raise ValueError("a view has no primary_key (it is never written)")
        return self


class TablesFile(Model):
    """config/tables.yaml: the columns of every table the pipeline writes, in French and English."""

    tables: dict[str, Table] = Field(min_length=1)

    @model_validator(mode="after")
    def _raw_copies_described(self) -> TablesFile:
        raw = self.tables.get(RAW_PATTERN)
        if raw is not None and None in (raw.file_column, raw.undeclared_column):
            raise ValueError(f"tables.{RAW_PATTERN} needs `file_column` and `undeclared_column` (how the files' own "
                             "columns are described)")
        return self

    @model_validator(mode="after")
    def _references_resolve(self) -> TablesFile:
        # a reference to a table or column that is not declared would only fail when the
        # table is first written, in a run: refused here, when the file is read
        for name, table in self.tables.items():
            if table.same_columns_as and table.same_columns_as not in self.tables:
                raise ValueError(f"tables.{name}.same_columns_as: {table.same_columns_as} is not declared")
            for column, spec in table.columns.items():
                ref = spec.same_as if spec else None
                if ref is None:
                    continue
                target = self.tables.get(ref)
                if target is None or column not in target.columns:
                    raise ValueError(f"tables.{name}.columns.{column}.same_as: {ref} declares no column {column}")
        return self
