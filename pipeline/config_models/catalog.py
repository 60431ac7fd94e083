"""The model of `config/catalog.yaml`, the source catalog (what each key means: the file's
header comment). The model says which keys exist and what each holds; how they tie together
(a form named, a rule's measures declared, a measure mapped in every vintage) stays with the
loader, `pipeline.catalog`, whose messages name the source and the year."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.config_models.base import Model, PositiveInt, Regex, Text, shaped

CONFIDENTIAL, PUBLIABLE = "confidentiel-convention-caf", "publiable"
Classification = Literal["confidentiel-convention-caf", "publiable"]
ColumnMap = dict[str, str | None]  # source label -> canonical name; null drops the label


class ZoneLevel(Model):
    code: Regex = Field(description="The pattern of a well-formed code of this level.")
    within: str | None = Field(default=None, description="The level a zone lies within (its code starts with it).")
    parent_code_length: PositiveInt | None = Field(default=None, description="The parent code: its first n characters.")


class Markers(Model):
    secret_at_source: tuple[str, ...] = Field(default=(), description="Texts standing for a secret value.")
    missing: tuple[str, ...] = Field(default=(), description="Texts standing for a missing value.")


class Bundle(Model):
    file_regex: Regex | None = Field(default=None, description="The workbook holding every table, one per sheet.")


class Measure(Model):
    label: Text = Field(description="French label, for messages and reports.")
    type: Literal["count", "decimal_count", "rate"] = Field(
        default="count", description="count: whole numbers; decimal_count: weighted census counts; rate.")
    max: float | None = Field(default=None, description="Rates: an upper bound that only catches a misplaced decimal.")
    sum_of: tuple[str, ...] = Field(default=(), description="A measure computed as the sum of these.")


class Long(Model):
    period: Text = Field(description="The column holding the year.")
    measure: Text = Field(description="The column holding the measure code.")
    value: Text = Field(description="The column holding the value.")
    status: str | None = Field(default=None, description="A column of status codes.")
    measure_codes: dict[str, str | None] = Field(min_length=1, description="Code in the file -> canonical measure.")
    status_flags: dict[str, Literal["missing", "secret_at_source"]] = Field(
        default_factory=dict, description="Status code -> missing or secret_at_source.")


class Vintage(Model):
    """One year of a source in one form (or a named form, `forms:`, that vintages use)."""

    form: str | None = Field(default=None, description="A template of `forms` this vintage starts from.")
    file: str | None = Field(default=None, description="File name in raw/ (glob patterns allowed).")
    sheet: str | None = Field(default=None, description="Sheet of a workbook (ignored for CSV files).")
    header_row: PositiveInt = Field(default=1, description="1-based row of the column labels.")
    year_column: str | None = Field(default=None, description="Files long by year: the column holding the year.")
    layout: Literal["wide", "long"] = Field(default="wide", description="wide: a column per measure; long: a row.")
    long: Long | None = None
    columns: ColumnMap = Field(default_factory=dict, description="Replaces the source's labels of the same names.")
    filters: dict[str, shaped("a text or a list of texts", scalar=str, list=tuple[str, ...])] = Field(
        default_factory=dict, description="Column label -> value(s) kept.")
    absent: tuple[str, ...] = Field(default=(), description="Measures this vintage does not have (not available).")
    bundle_sheet: str | None = Field(default=None, description="The sheet of this table in the bundle workbook.")
    encoding: str | None = Field(default=None, description="CSV files; default UTF-8 then Windows-1252.")


class Zone(Model):
    level: str = Field(default="commune", description="A key of zone_levels.")
    scope: Literal["territory", "departement", "france"] = Field(
        default="territory", description="What the file covers: rows outside the territory dropped unless territory.")


class Source(Model):
    title: Text
    producer: Text
    classification: Classification = Field(
        description="confidentiel-convention-caf: destroyed when the study closes; publiable: open data, kept.")
    articles: tuple[str, ...] = Field(default=(), description="The convention articles that govern its tables.")
    licence: str | None = Field(default=None, description="Public data: the licence they are published under.")
    description: str | None = None
    file_regex: Regex = Field(description="Any file of raw/ whose name matches belongs to this source.")
    blank_means: Literal["secret_at_source", "missing"] = Field(description="What an empty cell means.")
    zone: Zone = Field(default_factory=Zone)
    measures: dict[str, shaped("a label or a mapping {label, type, max, sum_of}", scalar=Text, mapping=Measure)]
    rules: tuple[str, ...] = Field(default=(), description="'smaller <= larger', checked on every row.")
    columns: ColumnMap = Field(default_factory=dict, description="Source column label -> canonical name.")
    forms: dict[str, Vintage] = Field(default_factory=dict, description="Named vintage templates.")
    vintages: dict[int, shaped("a vintage, or a list of forms of the year", mapping=Vintage, list=tuple[Vintage, ...])]

    @model_validator(mode="after")
    def _classified(self) -> Source:
        if self.classification == PUBLIABLE and not self.licence:
            raise ValueError("a publiable source names the `licence` its data are published under")
        if self.classification == CONFIDENTIAL and not self.articles:
            raise ValueError("a confidential source lists the convention `articles` that govern it")
        return self


class CatalogFile(Model):
    """config/catalog.yaml: each source table declared once."""

    zone_levels: dict[str, ZoneLevel] = Field(default_factory=dict)
    markers: Markers = Field(default_factory=Markers)
    technical_codes: tuple[str, ...] = Field(default=(), description="Rows that are not zones, dropped and counted.")
    bundle: Bundle = Field(default_factory=Bundle)
    sources: dict[str, Source] = Field(min_length=1)
