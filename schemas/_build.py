"""Building blocks of the source-table schemas: a catalog declaration in, a pandera
`DataFrameSchema` out, for the staged frame of one year (one row per zone)."""

from __future__ import annotations

import pandera.pandas as pa

from pipeline.catalog import AtMost, MeasureSpec, Source


def measure_checks(measure: MeasureSpec) -> list[pa.Check]:
    """≥ 0 always; whole numbers for counts; the declared bound for rates (never a clamp)."""
    checks = [pa.Check.ge(0, error="must be ≥ 0")]
    if measure.integer:
        checks.append(
            pa.Check(lambda s: (s.dropna() % 1 == 0), element_wise=False, name="integer",
                     error="must be a whole number")
        )
    if measure.maximum is not None:
        checks.append(pa.Check.le(measure.maximum, error=f"must be ≤ {measure.maximum:g}"))
    return checks


def rule_check(rule: AtMost) -> pa.Check:
    a, b = rule.smaller, rule.larger
    return pa.Check(lambda df: df[a].isna() | df[b].isna() | (df[a] <= df[b] + 1e-9), name=rule.name)


def schema_for(source: Source, zone_check: pa.Check, measures: list[str] | None = None) -> pa.DataFrameSchema:
    """The schema of one year of `source`: a unique, known zone code per row, and each
    measure (those of `measures`, default all declared) typed and checked."""
    columns = {"code_zone": pa.Column(str, nullable=False, unique=True, checks=zone_check)}
    names = measures if measures is not None else list(source.measures)
    for name in names:
        columns[name] = pa.Column(float, nullable=True, checks=measure_checks(source.measures[name]))
    rules = [r for r in source.rules if r.smaller in names and r.larger in names]
    return pa.DataFrameSchema(
        columns, checks=[rule_check(r) for r in rules], name=source.id, strict=False, coerce=False,
    )
