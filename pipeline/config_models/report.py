"""The model of `config/report.yaml`, the reports' settings, the one reading of the file:
`pipeline.reports.context.load_report_config` builds the documents' settings from it. A
symbol is a text, neither a number nor a formula, and the three differ."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from pipeline.config_models.base import Model, PositiveInt, Text, expect, read_yaml, validated
from pipeline.settings import Paths

SheetName = expect(str, "a sheet name of 1 to 31 characters (Excel's limit)", min_length=1, max_length=31)


class Geometry(Model):
    path: str | None = Field(default=None, description="Commune outlines (GeoJSON), relative to the project root.")
    code_property: Text = Field(default="code", description="The feature property holding the INSEE commune code.")
    name_property: Text = Field(default="nom", description="The feature property holding the commune name.")


# Characters that make a spreadsheet read a text as a formula (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def _symbol(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("expected", "must be a non-empty text")
    if value.startswith(FORMULA_START):
        raise PydanticCustomError("expected", "must not start with = + - @ (a spreadsheet would run it)")
    try:
        float(value.replace(",", "."))
    except ValueError:
        return value
    raise PydanticCustomError("expected", "must not be a number (a reader would take it for a value)")


Symbol = Annotated[Text, AfterValidator(_symbol)]


class Symbols(Model):
    masked: Symbol = Field(default="s", description="A value hidden by the statistical secret (art. 4).")
    not_available: Symbol = Field(default="nd", description="A value unknown or not computable.")
    out_of_period: Symbol = Field(default="///", description="A year the convention does not cover.")

    @model_validator(mode="after")
    def _distinct(self) -> Symbols:
        if len({self.masked, self.not_available, self.out_of_period}) != 3:
            raise PydanticCustomError("expected", "the three symbols must differ")
        return self


class Colours(Model):
    epci: Text | None = Field(default=None, description="The agglomeration's line (a colour name or #rrggbb).")
    rpe: tuple[Text, ...] | None = Field(default=None, description="The RPE's lines, in turn.")
    map_palette: Text | None = Field(default=None, description="matplotlib colour map of the choropleth.")
    map_classes: PositiveInt | None = Field(default=None, description="Classes of the map (quantiles).")
    masked: Text | None = None
    not_available: Text | None = None
    header: Text | None = Field(default=None, description="Header rows of the workbook.")


class ReportFile(Model):
    """config/report.yaml: the documents' settings (names, symbols, notes, map, colours)."""

    geometry: Geometry = Field(default_factory=Geometry)
    symbols: Symbols = Field(default_factory=Symbols)
    sheet_names: dict[str, SheetName] = Field(default_factory=dict, description="Indicator -> short sheet name.")
    measure_labels: dict[str, Text] = Field(default_factory=dict, description="Overrides the catalog's labels.")
    notes: dict[str, Text] = Field(default_factory=dict, description="Indicator -> what a reader must know.")
    producers: dict[str, Text] = Field(default_factory=dict, description="Producer -> name in the source lines.")
    colours: Colours = Field(default_factory=Colours)


def report_file(paths: Paths) -> ReportFile:
    """config/report.yaml checked by its model (every key optional, the file too), as a
    ReportError. The reports' loader, in pipeline/reports, reads the file after this check."""
    from pipeline.reports.context import ReportError  # the reports import the config, not the reverse

    path = paths.config / "report.yaml"
    doc = read_yaml(path, ReportError, "missing") if path.exists() else {}
    return validated(ReportFile, doc, path, ReportError)
