"""Building blocks of the source-table schemas: declarations in, pandera schemas out.

Each module of `schemas/` declares one source table as a `TableSpec` (its measures and
their kind, and the rules that tie measures together); `TableSpec.schema()` turns the
declaration into a pandera `DataFrameSchema` for the staged frame of one year (one row
per zone). The referential-dependent rule (zone codes known to the territory) is
added at build time, since the territory is configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandera.pandas as pa


@dataclass(frozen=True)
class Measure:
    """A canonical measure: a count (integer or weighted) or a rate in percent."""

    description: str
    kind: str = "count"  # count | rate
    integer: bool = True
    maximum: float | None = None  # for rates; None: no upper bound (never clamp)

    def checks(self) -> list[pa.Check]:
        checks = [pa.Check.ge(0, error="must be ≥ 0")]
        if self.kind == "count" and self.integer:
            checks.append(
                pa.Check(lambda s: (s.dropna() % 1 == 0), element_wise=False, name="integer", error="must be a whole number")
            )
        if self.maximum is not None:
            checks.append(pa.Check.le(self.maximum, error=f"must be ≤ {self.maximum:g}"))
        return checks


def count(description: str, integer: bool = True) -> Measure:
    return Measure(description, "count", integer)


def rate(description: str, maximum: float | None = None) -> Measure:
    return Measure(description, "rate", integer=False, maximum=maximum)


@dataclass(frozen=True)
class AtMost:
    """Cross-field rule: `smaller` ≤ `larger` on every row where both are known."""

    smaller: str
    larger: str

    @property
    def name(self) -> str:
        return f"{self.smaller} ≤ {self.larger}"

    def check(self) -> pa.Check:
        a, b = self.smaller, self.larger
        return pa.Check(
            lambda df: df[a].isna() | df[b].isna() | (df[a] <= df[b] + 1e-9),
            name=self.name,
        )


@dataclass(frozen=True)
class TableSpec:
    source: str
    description: str
    measures: dict[str, Measure]
    rules: list[AtMost] = field(default_factory=list)

    def schema(self, known_codes: frozenset[str] | set[str]) -> pa.DataFrameSchema:
        columns = {
            "code_zone": pa.Column(
                str,
                nullable=False,
                unique=True,
                checks=pa.Check.isin(sorted(known_codes), error="must be a zone of the territory referential"),
            ),
        }
        for name, measure in self.measures.items():
            columns[name] = pa.Column(float, nullable=True, checks=measure.checks())
        return pa.DataFrameSchema(
            columns,
            checks=[rule.check() for rule in self.rules],
            name=self.source,
            strict=False,
            coerce=False,
        )
