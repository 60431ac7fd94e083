"""The models of `config/governance.yaml` (owner and classifications of each stage) and of
`config/tables.yaml` (the columns of every table the pipeline writes, described)."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipeline.config_models.base import Model, Text

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
    type: Text | None = Field(default=None, description="DuckDB type.")
    fr: Text | None = None
    en: Text | None = None
    same_as: str | None = Field(default=None, description="A table whose column of the same name this one is.")


class Table(Model):
    description: Bilingual | None = None
    same_columns_as: str | None = Field(default=None, description="Another table whose columns it has exactly.")
    columns: dict[str, Column | None] = Field(default_factory=dict)
    # `raw.*` only: how the files' own columns are described
    file_column: Bilingual | None = None
    roles: dict[str, Bilingual] = Field(default_factory=dict)
    undeclared_column: Bilingual | None = None


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
