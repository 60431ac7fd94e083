"""The indicator definitions: `config/indicators.yaml` read and checked into typed objects.

What belongs here: loading and validating the definitions (labels, units, kinds, sources,
measures, years, ratio formulas), and turning them into the small tables the warehouse
SQL joins on (`indicator_defs`, `indicator_years`, `indicator_measures`). Nothing here
reads a data file or the warehouse; the aggregation itself is `pipeline/sql/*.sql`, run by
`pipeline.defs.warehouse`. Adding an indicator is an edit of the YAML (plus its source
mapping in `config/catalog.yaml`), not of this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import pandas as pd

from pipeline.config_models import indicators as model
from pipeline.config_models.base import read_yaml, validated
from pipeline.errors import PipelineError
from pipeline.settings import Paths, project_paths

KINDS, PRODUCERS = get_args(model.Kind), get_args(model.Producer)  # declared in the model of the file
# The levels of the commune hierarchy (commune -> RPE -> EPCI) read an indicator's own
# source; a level below the commune (an IRIS) reads the source its `below_commune` entry names.
COMMUNAL = "commune"


def zone_group(level: str) -> str:
    """The group of levels whose figures come from the same source: `commune` for the
    commune, the RPE and the EPCI, the level itself below the commune (`iris`)."""
    return COMMUNAL if level in model.COMMUNAL_LEVELS else level


class IndicatorError(PipelineError, ValueError):
    pass


@dataclass(frozen=True)
class Indicator:
    id: str
    label: str
    unit: str
    kind: str  # count | ratio
    producer: str  # CAF | Cnaf | INSEE
    source: str  # staging table name (staging.<source>, Dagster asset stg_<source>)
    years: tuple[int, ...]
    measure: str | None = None  # count
    numerator: str | None = None  # ratio
    denominator: str | None = None  # ratio
    multiplier: float | None = None  # ratio
    published_measure: str | None = None
    source_note: str | None = None
    note: str | None = None
    # Levels below the commune: level -> (source, measure, years) of a count there
    below_commune: tuple[tuple[str, str, str, tuple[int, ...]], ...] = ()

    @property
    def all_years(self) -> tuple[int, ...]:
        """Every year the indicator has a figure for, at the commune and above or below it."""
        return tuple(sorted(set(self.years).union(*(ys for *_, ys in self.below_commune))))

    @property
    def communal(self) -> bool:
        """Whether the indicator has figures for the communes, RPE and EPCI (an indicator
        may exist below the commune only: `years: []` beside `below_commune`)."""
        return bool(self.years)

    @property
    def measures(self) -> tuple[str, ...]:
        """The staging measures this indicator reads (published_measure included)."""
        base = (self.measure,) if self.kind == "count" else (self.numerator, self.denominator)
        extra = (self.published_measure,) if self.published_measure else ()
        return tuple(m for m in base + extra if m)


@dataclass(frozen=True)
class IndicatorSet:
    indicators: tuple[Indicator, ...]
    allocataires_source: str
    allocataires_measure: str
    reconciliation_tolerance: float = 0.001
    path: Path | None = None
    # Levels below the commune: level -> (source, measure) of the allocataires there
    allocataires_below_commune: tuple[tuple[str, str, str], ...] = ()

    @property
    def ids(self) -> list[str]:
        return [i.id for i in self.indicators]

    def get(self, indicator_id: str) -> Indicator:
        for ind in self.indicators:
            if ind.id == indicator_id:
                return ind
        raise IndicatorError(f"no indicator named {indicator_id!r}")

    @property
    def years(self) -> list[int]:
        return sorted({y for i in self.indicators for y in i.years})

    @property
    def sources(self) -> list[str]:
        """Every staging table read, indicators and allocataires together."""
        below = {src for i in self.indicators for _lv, src, _m, _y in i.below_commune}
        below |= {src for _lv, src, _m in self.allocataires_below_commune}
        return sorted({i.source for i in self.indicators} | {self.allocataires_source} | below)

    @property
    def below_commune_levels(self) -> list[str]:
        """The levels below the commune some indicator is computed at (`iris`)."""
        levels = {lv for i in self.indicators for lv, _s, _m, _y in i.below_commune}
        return sorted(levels)

    def allocataires_at(self, level: str) -> tuple[str, str] | None:
        """(source, measure) of the allocataires of a zone of `level`."""
        if zone_group(level) == COMMUNAL:
            return self.allocataires_source, self.allocataires_measure
        return next(((s, m) for lv, s, m in self.allocataires_below_commune if lv == level), None)

    def indicators_using(self, source: str, measure: str) -> list[str]:
        used = [i.id for i in self.indicators if i.source == source and measure in i.measures]
        if source == self.allocataires_source and measure == self.allocataires_measure:
            used.append("allocataires")
        return used

    # ---- the tables the SQL joins on ---------------------------------------------

    def defs_frame(self) -> pd.DataFrame:
        """indicator_defs: one row per indicator."""
        return pd.DataFrame(
            {
                "indicator_order": range(1, len(self.indicators) + 1),
                "indicator": [i.id for i in self.indicators],
                "label": [i.label for i in self.indicators],
                "unit": [i.unit for i in self.indicators],
                "kind": [i.kind for i in self.indicators],
                "producer": [i.producer for i in self.indicators],
                "source_note": [i.source_note for i in self.indicators],
                "source": [i.source for i in self.indicators],
                "measure": [i.measure for i in self.indicators],
                "numerator": [i.numerator for i in self.indicators],
                "denominator": [i.denominator for i in self.indicators],
                "multiplier": pd.array([i.multiplier for i in self.indicators], dtype="Float64"),
                "published_measure": [i.published_measure for i in self.indicators],
                "first_year": [min(i.all_years) for i in self.indicators],
                "last_year": [max(i.all_years) for i in self.indicators],
                "alloc_source": self.allocataires_source,
                "alloc_measure": self.allocataires_measure,
                "note": [i.note for i in self.indicators],
            }
        ).astype(
            {
                c: "string"
                for c in (
                    "indicator label unit kind producer source_note source measure numerator "
                    "denominator published_measure alloc_source alloc_measure note"
                ).split()
            }
        )

    def years_frame(self) -> pd.DataFrame:
        """indicator_years: one row per indicator and year of the convention."""
        rows = [(i.id, y) for i in self.indicators for y in i.years]
        return pd.DataFrame(rows, columns=["indicator", "year"]).astype({"indicator": "string", "year": "int32"})

    def levels_frame(self) -> pd.DataFrame:
        """indicator_levels: where each indicator is read for each group of levels
        (`zone_group`: commune for commune / RPE / EPCI, or a level below the commune)
        and year: one row per (indicator, zone_group, year), with the source, measure,
        numerator, denominator, published measure and the allocataires' source and measure."""
        rows = []
        for i in self.indicators:
            for y in i.years:
                rows.append((i.id, COMMUNAL, y, i.source, i.measure, i.numerator, i.denominator, i.published_measure,
                             self.allocataires_source, self.allocataires_measure))
            for level, source, measure, years in i.below_commune:
                alloc = self.allocataires_at(level) or (None, None)
                for y in years:
                    rows.append((i.id, level, y, source, measure, None, None, None, *alloc))
        columns = ["indicator", "zone_group", "year", "source", "measure", "numerator", "denominator",
                   "published_measure", "alloc_source", "alloc_measure"]
        frame = pd.DataFrame(rows, columns=columns)
        return frame.astype({**{c: "string" for c in columns if c != "year"}, "year": "int32"})

    def measures_frame(self) -> pd.DataFrame:
        """indicator_measures: every (source, measure, year, zone_group) the indicators need.

        The allocataires measure is needed for every year any indicator covers (at a
        level below the commune: every year an indicator is computed there).
        `additive` is False for a measure read only as a producer's published value
        (a rate): it is never summed over communes, only taken as the producer gives it.
        """
        additive: dict[tuple[str, str, int, str], bool] = {}
        for ind in self.indicators:
            for y in ind.years:
                for m in ind.measures:
                    key = (ind.source, m, y, COMMUNAL)
                    additive[key] = additive.get(key, False) or m != ind.published_measure
            for level, source, measure, years in ind.below_commune:
                for y in years:
                    additive[(source, measure, y, level)] = True
                    alloc = self.allocataires_at(level)
                    if alloc:
                        additive[(*alloc, y, level)] = True
        for y in self.years:
            additive[(self.allocataires_source, self.allocataires_measure, y, COMMUNAL)] = True
        frame = pd.DataFrame(
            [(*key, flag) for key, flag in sorted(additive.items())],
            columns=["source", "measure", "year", "zone_group", "additive"],
        )
        return frame.astype(
            {"source": "string", "measure": "string", "year": "int32", "zone_group": "string", "additive": "bool"}
        )


def _indicator(ind_id: str, spec: model.Indicator) -> Indicator:
    below = tuple((level, b.source, b.measure, tuple(sorted(set(b.years))))
                  for level, b in (spec.below_commune or {}).items())
    return Indicator(
        id=ind_id, label=spec.label, unit=spec.unit, kind=spec.kind, producer=spec.producer, source=spec.source,
        years=tuple(sorted(spec.years)), measure=(spec.measure or ind_id) if spec.kind == "count" else None,
        numerator=spec.numerator, denominator=spec.denominator, multiplier=spec.multiplier,
        published_measure=spec.published_measure, source_note=spec.source_note, note=spec.note, below_commune=below,
    )


def parse_indicators(doc: object, where: str = "indicators.yaml", path: Path | None = None) -> IndicatorSet:
    """Validate an already-parsed YAML document (its model: `pipeline.config_models.indicators`)."""
    checked = validated(model.IndicatorsFile, doc, where, IndicatorError)
    alloc = checked.allocataires
    return IndicatorSet(
        indicators=tuple(_indicator(ind_id, spec) for ind_id, spec in checked.indicators.items()),
        allocataires_source=alloc.source,
        allocataires_measure=alloc.measure,
        reconciliation_tolerance=checked.reconciliation_tolerance,
        path=path,
        allocataires_below_commune=tuple((lv, b.source, b.measure) for lv, b in (alloc.below_commune or {}).items()),
    )


def load_indicators(paths: Paths | None = None, path: Path | None = None) -> IndicatorSet:
    """Read `config/indicators.yaml` (or `path`) and validate it."""
    path = Path(path or (paths or project_paths()).config / "indicators.yaml")
    return parse_indicators(read_yaml(path, IndicatorError, "the indicator definitions are missing"), str(path), path)


def check_against_catalog(indicators: IndicatorSet, catalog) -> list[str]:
    """Problems between the definitions and `config/catalog.yaml` (empty list: none).

    Every source must be in the catalog, cover the indicator's years, and declare its
    measures.
    """
    problems: list[str] = []
    wanted = [(i.id, i.source, set(i.measures), set(i.years)) for i in indicators.indicators]
    wanted.append(
        ("allocataires", indicators.allocataires_source, {indicators.allocataires_measure}, set(indicators.years))
    )
    for ind_id, source_id, measures, years in wanted:
        source = catalog.sources.get(source_id)
        if source is None:
            problems.append(f"{ind_id}: source {source_id!r} is not in the catalog")
            continue
        missing_years = sorted(years - set(source.years))
        if missing_years:
            problems.append(f"{ind_id}: the catalog has no {source_id} vintage for {missing_years}")
        for measure in sorted(measures - set(source.measures)):
            problems.append(f"{ind_id}: the catalog declares no measure {measure!r} in source {source_id!r}")
    below = [(i.id, lv, s, m, set(y)) for i in indicators.indicators for lv, s, m, y in i.below_commune]
    for lv in indicators.below_commune_levels:
        alloc = indicators.allocataires_at(lv)
        if alloc is None:
            problems.append(f"allocataires: no source of the allocataires at level {lv} (allocataires.below_commune)")
            continue
        years = set().union(*(y for _i, level, _s, _m, y in below if level == lv))
        below.append(("allocataires", lv, *alloc, years))
    for ind_id, level, source_id, measure, years in below:
        source = catalog.sources.get(source_id)
        if source is None:
            problems.append(f"{ind_id} ({level}): source {source_id!r} is not in the catalog")
            continue
        if source.zone_level != level:
            problems.append(f"{ind_id} ({level}): source {source_id!r} has zones of level {source.zone_level}")
        missing_years = sorted(years - set(source.years))
        if missing_years:
            problems.append(f"{ind_id} ({level}): the catalog has no {source_id} vintage for {missing_years}")
        if measure not in source.measures:
            problems.append(f"{ind_id} ({level}): the catalog declares no measure {measure!r} in source {source_id!r}")
    return problems
