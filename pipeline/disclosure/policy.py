"""The disclosure policy of `config/disclosure.yaml`: loaded, checked, hashed.

Only reading and checking the policy belongs here; applying it is `suppression`'s job
and verifying the result is `audit`'s.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import yaml

from pipeline.config_models.base import validated
from pipeline.config_models.disclosure import Contributor, DisclosureFile
from pipeline.errors import PipelineError
from pipeline.indicators import IndicatorSet
from pipeline.settings import Paths, project_paths
from pipeline.yamlfile import load_yaml

CONTRIBUTORS = set(get_args(Contributor))  # declared once, in the model of the file


class PolicyError(PipelineError, ValueError):
    pass


@dataclass(frozen=True)
class IndicatorPolicy:
    sensitive: bool
    contributors: tuple[str, ...] = ("value",)
    subpopulation: bool = False


@dataclass(frozen=True)
class Policy:
    version: str
    sha256: str
    threshold: int
    zero_publishable: bool
    minimum_allocataires: int
    rate_decimals: int
    # the reader model (`reader:` of the policy): (smaller, larger) measures of one zone and
    # year, and the measures that may hold fractions (all others are whole numbers)
    inequalities: tuple[tuple[str, str], ...]
    fractional_measures: frozenset[str]
    earlier_releases: bool  # the reader holds every earlier release of the study (issue 22)
    cost_by_level: dict[str, float]
    max_rounds: int
    indicators: dict[str, IndicatorPolicy]

    def of(self, indicator: str) -> IndicatorPolicy:
        try:
            return self.indicators[indicator]
        except KeyError:
            raise PolicyError(f"config/disclosure.yaml says nothing about indicator {indicator!r}") from None

    def level_cost(self, level: str) -> float:
        return float(self.cost_by_level.get(level, 1.0))


def parse_policy(text: str, where: str = "config/disclosure.yaml") -> Policy:
    """The policy of a YAML text, checked by its model (`pipeline.config_models.disclosure`):
    an unknown key, a missing one or a value of the wrong type is a PolicyError naming it."""
    doc = _document(text, where)
    model = validated(DisclosureFile, doc, where, PolicyError)
    return Policy(
        version=model.version,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        threshold=model.threshold,
        zero_publishable=model.zero_publishable,
        minimum_allocataires=model.minimum_allocataires,
        rate_decimals=model.rate_decimals,
        inequalities=tuple((str(a), str(b)) for a, b in model.inequalities),
        fractional_measures=frozenset(model.reader.fractional_measures),
        earlier_releases=model.reader.earlier_releases,
        cost_by_level=dict(model.protection.cost_by_level),
        max_rounds=model.protection.max_rounds,
        indicators={name: IndicatorPolicy(spec.sensitive, tuple(spec.contributors), spec.subpopulation)
                    for name, spec in model.indicators.items()},
    )


def _document(text: str, where: str):
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{where}: not valid YAML ({exc})") from None


def load_policy(paths: Paths | None = None, path: Path | None = None) -> Policy:
    path = path or (paths or project_paths()).config / "disclosure.yaml"
    try:
        return parse_policy(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        raise PolicyError(f"{path}: the disclosure policy is missing") from None


def check_against_indicators(policy: Policy, indicators: IndicatorSet) -> list[str]:
    """Problems between the policy and the indicator definitions (empty when coherent)."""
    problems = []
    ids = set(indicators.ids)
    for missing in sorted(ids - set(policy.indicators)):
        problems.append(f"indicator {missing} has no entry in config/disclosure.yaml")
    for extra in sorted(set(policy.indicators) - ids):
        problems.append(f"config/disclosure.yaml names {extra}, which config/indicators.yaml does not define")
    known = measures_of(indicators)
    for a, b in policy.inequalities:
        for measure in (a, b):
            if measure not in known:
                problems.append(f"inequality {a} <= {b}: {measure} is the measure of no indicator "
                                "(a count, or a rate's numerator or denominator)")
    sources: dict[str, set[str]] = defaultdict(set)
    for i in indicators.indicators:
        for measure in (i.measure, i.numerator, i.denominator):
            if measure:
                sources[measure].add(i.source)
    for measure, where in sorted(sources.items()):
        if len(where) > 1:
            problems.append(f"measure {measure} is read from several sources ({sorted(where)}): "
                            "the reader model names a measure by itself")
    for ind in sorted(ids & set(policy.indicators)):
        kind = indicators.get(ind).kind
        contributors = set(policy.indicators[ind].contributors)
        if kind == "count" and contributors != {"value"}:
            problems.append(f"{ind} is a count: its contributors are its value")
        if kind == "ratio" and "value" in contributors:
            problems.append(f"{ind} is a rate: its contributors are numerator, denominator or complement")
    return problems


def linked_counts(indicators: IndicatorSet) -> dict[str, tuple[str | None, str | None]]:
    """For each rate, the count indicators that are its numerator and denominator, if published."""
    counts = {(i.source, i.measure): i.id for i in indicators.indicators if i.kind == "count"}
    return {
        i.id: (counts.get((i.source, i.numerator)), counts.get((i.source, i.denominator)))
        for i in indicators.indicators
        if i.kind == "ratio"
    }


def measures_of(indicators: IndicatorSet) -> set[str]:
    """Every measure a reader can reason about: counts' measures, rates' numerators and denominators."""
    return {m for i in indicators.indicators for m in (i.measure, i.numerator, i.denominator) if m}


def count_pairs(policy: Policy, indicators: IndicatorSet) -> list[tuple[str, str]]:
    """The policy's inequalities between two published count indicators, as indicator ids."""
    by_measure = {i.measure: i.id for i in indicators.indicators if i.kind == "count"}
    return [(by_measure[a], by_measure[b]) for a, b in policy.inequalities if a in by_measure and b in by_measure]
