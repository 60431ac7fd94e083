"""The model of `config/indicators.yaml`, the indicator definitions (what each key means:
the file's header comment). A count reads a measure, a ratio a numerator and a denominator;
a level below the commune (an IRIS) reads a source of its own."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipeline.config_models.base import Ident, Model, Text, expect

COMMUNAL_LEVELS = ("commune", "rpe", "epci")
Kind = Literal["count", "ratio"]
Producer = Literal["CAF", "Cnaf", "INSEE"]
Year = expect(int, "a year, e.g. 2017", strict=True)
Years = expect(tuple[Year, ...], "a list of years, e.g. [2017, 2018]")


def _below(levels: dict[str, object]) -> dict[str, object]:
    for level in levels:
        if level in COMMUNAL_LEVELS:
            raise ValueError(f"{level} is not below the commune")
    return levels


class BelowCommuneCount(Model):
    source: Ident = Field(description="The staging source read at that level.")
    measure: Ident = Field(description="Its measure.")
    years: Annotated[Years, Field(min_length=1)] = Field(description="The years computed there.")


class BelowCommuneSource(Model):
    source: Ident
    measure: Ident


class Indicator(Model):
    label: Text = Field(description="The French wording of the convention's annex, word for word.")
    unit: Text = Field(description="What one unit of the value is.")
    kind: Kind = Field(description="count: added up; ratio: numerator / denominator x multiplier.")
    producer: Producer
    source_note: str | None = Field(default=None, description="The source named by the convention.")
    source: Ident = Field(description="The staging table the figures come from (staging.<source>).")
    measure: Ident | None = Field(default=None, description="Count: the measure (default: the indicator's id).")
    numerator: Ident | None = None
    denominator: Ident | None = None
    multiplier: expect(float, "a positive number (100 for a percentage)", strict=True, gt=0) | None = None
    published_measure: Ident | None = Field(default=None, description="The producer's own value, for comparison.")
    years: Years = Field(description="The years the convention covers ([] with below_commune: below it only).")
    note: str | None = None
    below_commune: dict[Ident, BelowCommuneCount] | None = Field(
        default=None, description="Counts: a level below the commune (iris) -> {source, measure, years}.")

    @model_validator(mode="after")
    def _coherent(self) -> Indicator:
        if not self.years and not self.below_commune:
            raise ValueError("years must not be empty (an empty list is for an indicator that exists below the "
                             "commune only, declared by `below_commune`)")
        if len(set(self.years)) != len(self.years):
            raise ValueError("a year is listed twice")
        if self.kind == "count":
            for key in ("numerator", "denominator", "multiplier"):
                if getattr(self, key) is not None:
                    raise ValueError(f"a count has no `{key}` (only ratios do)")
        else:
            if self.measure is not None:
                raise ValueError("a ratio has `numerator` and `denominator`, not `measure`")
            if self.below_commune:
                raise ValueError("only a count can be computed below the commune (`below_commune`)")
            for key in ("numerator", "denominator", "multiplier"):
                if getattr(self, key) is None:
                    raise ValueError(f"a ratio needs `{key}`")
        _below(self.below_commune or {})
        return self


class Allocataires(Model):
    source: Ident = Field(description="The source of the allocataires of each zone and year.")
    measure: Ident
    below_commune: dict[Ident, BelowCommuneSource] | None = None

    @model_validator(mode="after")
    def _levels(self) -> Allocataires:
        _below(self.below_commune or {})
        return self


class IndicatorsFile(Model):
    """config/indicators.yaml: the indicators of the convention's annex."""

    allocataires: Allocataires
    reconciliation_tolerance: expect(float, "a number ≥ 0", strict=True, ge=0) = Field(
        default=0.001, description="Tolerance comparing our sums with the CAF's own RPE / EPCI figures.")
    indicators: Annotated[dict[Ident, Indicator], Field(min_length=1)]
