"""The model of `config/disclosure.yaml`, the statistical secrecy policy (convention art. 4).

Every key the masking and the audit read is declared here with its type and bounds: a
misspelt switch (`raeder:`, `zero_publishabel:`, `max_round:`) fails instead of leaving
its default in place, which would weaken the secrecy without a word.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipeline.config_models.base import Model, NonNegativeInt, PositiveInt, Switch, Text, expect

Contributor = Literal["value", "numerator", "denominator", "complement"]
Pair = expect(tuple[Text, Text], "a pair [smaller, larger] of measures")
Cost = expect(float, "a number > 0", gt=0, strict=True)


class IndicatorEntry(Model):
    """What secrecy says of one indicator."""

    sensitive: Switch = Field(description="Figures about allocataires: article 4 applies.")
    contributors: tuple[Contributor, ...] = Field(
        default=("value",), description="The figures counting its contributors: value for a count; numerator, "
        "denominator, complement for a rate.")
    subpopulation: Switch = Field(default=False, description="Apply the 100-allocataires minimum in every zone.")


class Reader(Model):
    """What the reader the masking protects against knows, besides every published figure."""

    inequalities: tuple[Pair, ...] | None = Field(
        default=None, description="[smaller, larger] measures of one zone and year, from the definitions.")
    fractional_measures: tuple[Text, ...] = Field(
        default=(), description="Measures that may hold fractions (all others are whole numbers).")
    earlier_releases: Switch = Field(default=True, description="The reader holds every earlier release.")


class Protection(Model):
    """How the masking protects: costs and rounds."""

    cost_by_level: dict[str, Cost] = Field(default_factory=dict,
                                           description="Cost of masking a cell: level weight x (1 + value).")
    max_rounds: PositiveInt = Field(default=60, description="Rounds of solve, audit, add a constraint.")
    # Accepted alias: older policies (and the tests' small ones) list the inequalities here;
    # `reader.inequalities` is their place since policy 2026.3.
    inequalities: tuple[Pair, ...] | None = Field(
        default=None, description="Legacy place of reader.inequalities (one of the two, not both).")


class DisclosureFile(Model):
    """config/disclosure.yaml: the statistical secrecy policy (convention art. 4)."""

    version: Text = Field(description="Recorded with every masking run; change it whenever a rule changes.")
    threshold: PositiveInt = Field(description="Art. 4, 1st rule: at least this many allocataires.")
    zero_publishable: Switch = Field(default=True, description="A true zero concerns no allocataire.")
    minimum_allocataires: NonNegativeInt = Field(
        description="Art. 4, 2nd rule: minimum of a zone below the commune or a sub-population.")
    rate_decimals: NonNegativeInt = Field(default=1, description="Rates are published rounded to this many decimals.")
    reader: Reader = Field(default_factory=Reader)
    protection: Protection = Field(default_factory=Protection)
    indicators: Annotated[dict[str, IndicatorEntry], Field(min_length=1)] = Field(
        description="Per indicator of config/indicators.yaml: sensitive, contributors, subpopulation.")

    @model_validator(mode="after")
    def _one_place_for_inequalities(self) -> DisclosureFile:
        if self.reader.inequalities is not None and self.protection.inequalities is not None:
            raise ValueError("the inequalities are listed twice (reader.inequalities and protection.inequalities): "
                             "keep reader.inequalities")
        return self

    @property
    def inequalities(self) -> tuple[tuple[str, str], ...]:
        return self.reader.inequalities or self.protection.inequalities or ()
