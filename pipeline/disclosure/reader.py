"""The reader model: everything a reader of the published table knows, as linear facts.

What belongs here: turning one year of a published table (level, zone_code, indicator,
value, status), the zone tree and the policy's `reader:` section into the system a reader
can reason with, and naming what that reader must not learn. The audit
(`pipeline.disclosure.audit`) decides it; nothing here solves anything.

The unknowns are the measures of each zone: a count indicator's measure, and a rate's
numerator and denominator (some, like the women with a child under 3, are never
published themselves). A reader knows:

- a published count is its value; a published rate r, rounded to `rate_decimals`, says
  (r - h) x den <= multiplier x num <= (r + h) x den (h half a unit of the last decimal);
- what each status means, as the reports' legend states it: a published rate exists (its
  denominator is at least 1) and, the primary rule being public, each of its contributors
  (`numerator`, `denominator`, `complement` = den - num) is 0 or at least the threshold;
  `s` (masked) and `nd` (not available) tell nothing (a masked count may be 0, a masked
  rate may not exist: a rate whose denominator is 0 and not published is shown `s`);
- every measure adds up from the children of a zone to the zone, for counts and for the
  hidden terms of rates alike (so do complements, being differences of additive terms);
- the inequalities of the policy between measures of one zone (the December actives are
  among the year's actives, a woman with a child under 3 has at least one child under 3...);
- measures are non-negative, and whole numbers but for the policy's `fractional_measures`.

What a reader must not learn (`Protected`): the value of every masked count of a
sensitive indicator; the numerator, denominator and complement (those the policy names as
contributors) of every masked sensitive rate and wherever one of its terms is masked; and
the sums of such hidden figures of one kind over the children of one zone. A masked rate
must not be recomputable either (`RatePin`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.disclosure.policy import Policy
from pipeline.indicators import IndicatorSet

CellKey = tuple[str, str, str]  # level, zone_code, indicator
Linear = dict[int, float]  # unknown's index -> coefficient
# No measure of one zone reaches this: bounds every unknown, so that no solve is unbounded.
UPPER = 1e7
# A contributor of a published rate within h of 0 (rate 0.0 or, for a complement, 100.0)
# is 0 or at least the threshold: a disjunction, modelled with a binary and this big M
# (a rate that rounds to 0.0 with 10,000 or more in its numerator would need a
# denominator of twenty million).
DISJUNCTION_M = 1e4


@dataclass(frozen=True)
class Protected:
    """A hidden figure that must be neither pinned nor proven between 1 and threshold - 1."""

    cell: CellKey  # the published cell it belongs to
    term: str | None  # None: the cell's own value; numerator, denominator or complement of a rate
    coefs: tuple[tuple[int, float], ...]
    constant: float
    family: str  # what adds up over the children of a zone: a measure, or "complement of <rate>"
    zone: str


@dataclass(frozen=True)
class RatePin:
    """A masked rate, whose value a reader must not recompute within its rounding."""

    cell: CellKey
    numerator: tuple[tuple[tuple[int, float], ...], float]  # (coefs, constant)
    denominator: tuple[tuple[tuple[int, float], ...], float]
    multiplier: float


@dataclass
class YearSystem:
    """One year's reader system: unknowns, linear rows low <= a.x <= high, disjunctions
    a.x + c in {0} or [threshold, inf), what is protected and the sums to check."""

    names: list[tuple[str, str]] = field(default_factory=list)  # (zone_code, measure) per unknown
    integral: list[bool] = field(default_factory=list)
    rows: list[tuple[Linear, float, float]] = field(default_factory=list)
    disjunctions: list[tuple[Linear, float]] = field(default_factory=list)
    contradictions: list[str] = field(default_factory=list)  # rows of published figures alone that fail
    protected: list[Protected] = field(default_factory=list)
    sums: list[tuple[str, list[int]]] = field(default_factory=list)  # relation name, protected indices
    pins: list[RatePin] = field(default_factory=list)
    recomputed: list[CellKey] = field(default_factory=list)  # masked rates beside both terms published
    # published rates over two hidden terms: (numerator, denominator unknowns, rate, half unit,
    # multiplier, contributors), whose whole values the audit snaps bounds to (`allowed_terms`)
    rate_terms: list[tuple[int, int, float, float, float, frozenset]] = field(default_factory=list)
    # rows a reader assumes without knowing them: a commune's figure and its IRIS come from two
    # sources, which may not agree. Published figures that refute one make the reader drop it.
    assumed: list[int] = field(default_factory=list)  # indices into `rows`


class ReaderModel:
    """The reader of `config/disclosure.yaml`'s `reader:` section, for a set of indicators."""

    def __init__(self, indicators: IndicatorSet, policy: Policy) -> None:
        self.policy = policy
        self.kind = {i.id: i.kind for i in indicators.indicators}
        self.measure = {i.id: i.measure for i in indicators.indicators if i.kind == "count"}
        self.terms = {i.id: (i.numerator, i.denominator) for i in indicators.indicators if i.kind == "ratio"}
        self.multiplier = {i.id: float(i.multiplier or 100) for i in indicators.indicators if i.kind == "ratio"}
        self.sensitive = {i.id: policy.of(i.id).sensitive for i in indicators.indicators}
        self.contributors = {i.id: set(policy.of(i.id).contributors) for i in indicators.indicators}
        self.half_unit = 0.5 * 10 ** (-policy.rate_decimals)
        self.counted = set(self.measure.values())  # measures some count indicator publishes
        self.carriers: dict[str, list[str]] = defaultdict(list)  # measure -> the count indicators publishing it
        for ind, measure in self.measure.items():
            self.carriers[measure].append(ind)
        # levels below the commune, read from other sources than the commune's figures
        self.infra_levels = set(indicators.below_commune_levels)

    def indicator_groups(self) -> dict[str, str]:
        """Indicators tied by some fact of the reader (a rate and its terms, an inequality
        between their measures), as groups: indicator -> its group's first indicator.
        Nothing a reader knows relates two groups."""
        carriers: dict[str, list[str]] = defaultdict(list)
        for ind, measure in self.measure.items():
            carriers[measure].append(ind)
        for rate, terms in self.terms.items():
            for measure in terms:
                carriers[measure].append(rate)
        parent = {ind: ind for ind in self.kind}

        def find(a: str) -> str:
            while parent[a] != a:
                a = parent[a]
            return a

        links = [carriers[m] for m in carriers]
        links += [carriers.get(a, []) + carriers.get(b, []) for a, b in self.policy.inequalities]
        for members in links:
            for other in members[1:]:
                parent[find(other)] = find(members[0])
        first: dict[str, str] = {}
        for ind in self.kind:  # the indicators' own order
            first.setdefault(find(ind), ind)
        return {ind: first[find(ind)] for ind in self.kind}

    def year_system(self, table: pd.DataFrame, level_of: dict[str, str],
                    children_of: dict[str, list[str]], prior: Sequence[Observation] = ()) -> YearSystem:
        """The reader's system for one year of a published table, and of the same year of
        every earlier release of the study (`prior`, `pipeline.disclosure.history`): the
        reader holds them all, each with its own zone tree, rounding and primary rule."""
        current = Observation(table, level_of, tuple((p, tuple(k)) for p, k in children_of.items()),
                              self.half_unit, float(self.policy.threshold))
        observations = [current, *prior]
        system = YearSystem()
        index: dict[tuple[str, str], int] = {}
        known: dict[tuple[str, str], float] = {}
        seen_rows: set = set()
        views = [_View.of(o, self) for o in observations]

        def unknown(name: tuple[str, str]) -> None:
            if name not in index and name not in known:
                index[name] = len(system.names)
                system.names.append(name)
                # the hidden terms of rates are whole numbers too: a reader who solves in whole
                # numbers proves what bounds from each rate alone (`_rounding_bounds`) miss,
                # e.g. three rounded rates over hidden women pin the active women of an RPE
                system.integral.append(name[1] not in self.policy.fractional_measures)

        for v in views:  # counts first: a published count is known
            for (level, zone, ind), st in v.status.items():
                if self.kind.get(ind) == "count" and st == "published":
                    name, figure = v.name(zone, self.measure[ind]), v.value[(level, zone, ind)]
                    if name in known and abs(known[name] - figure) > 1e-6:
                        system.contradictions.append(f"{ind} {zone} published with two values")
                    known.setdefault(name, figure)
        for v in views:
            for (_level, zone, ind) in v.status:
                if self.kind.get(ind) == "count":
                    unknown(v.name(zone, self.measure[ind]))
                elif self.kind.get(ind) == "ratio":
                    for measure in self.terms[ind]:
                        unknown(v.name(zone, measure))

        def linear(terms: list[tuple[float, tuple[str, str]]]) -> tuple[Linear, float]:
            coefs: Linear = defaultdict(float)
            constant = 0.0
            for coef, name in terms:
                if name in index:
                    coefs[index[name]] += coef
                else:
                    constant += coef * known[name]
            return {k: v for k, v in coefs.items() if v != 0.0}, constant

        def add(terms, low: float, high: float, what: str, assumed: bool = False, again: bool = False) -> None:
            coefs, constant = linear(terms)
            if coefs:
                signature = (tuple(sorted(coefs.items())), low - constant, high - constant, assumed)
                if again and signature in seen_rows:  # the same fact read in an earlier release
                    return
                seen_rows.add(signature)
                if assumed:
                    system.assumed.append(len(system.rows))
                system.rows.append((coefs, low - constant, high - constant))
            elif not (low - 1e-6 <= constant <= high + 1e-6) and not assumed:  # an assumption refuted: dropped
                system.contradictions.append(what)

        def disjunction(terms, again: bool = False) -> None:
            coefs, constant = linear(terms)
            if coefs:
                signature = (tuple(sorted(coefs.items())), constant)
                if again and signature in seen_rows:
                    return
                seen_rows.add(signature)
                system.disjunctions.append((coefs, constant))

        # additivity of every measure, counts and hidden terms alike, in each release's zone tree
        for v in views:
            for parent, kids in v.obs.relations:
                for measure in sorted(v.measures_at.get(parent, ())):
                    if all(measure in v.measures_at.get(kid, ()) for kid in kids) and kids:
                        add([(1.0, v.name(kid, measure)) for kid in kids] + [(-1.0, v.name(parent, measure))],
                            0.0, 0.0, f"{measure} {parent} = sum of its zones",
                            assumed=any(v.obs.level_of.get(kid) in self.infra_levels for kid in kids),
                            again=v is not views[0])
        # the inequalities of the definitions
        for v in views:
            for small, large in self.policy.inequalities:
                for zone, there in v.measures_at.items():
                    if small in there and large in there:
                        add([(1.0, v.name(zone, small)), (-1.0, v.name(zone, large))], -np.inf, 0.0,
                            f"{small} <= {large} in {zone}", again=v is not views[0])
        # what a published rate says about its terms, at the rounding and threshold of its release
        published_rates: set[tuple] = set()
        rate_terms: set[tuple] = set()
        for v in views:
            threshold = v.obs.threshold
            for key, rate in v.value.items():
                level, zone, ind = key
                if self.kind.get(ind) != "ratio":
                    continue
                num, den = (v.name(zone, m) for m in self.terms[ind])
                if v.obs.half_unit <= self.half_unit + 1e-12:  # as fine as today's: the rate is known
                    published_rates.add((ind, num, den))
                again = v is not views[0]
                m, h = self.multiplier[ind], v.obs.half_unit
                add([(m, num), (-(rate + h), den)], -np.inf, 0.0, f"{ind} {zone} rounding", again=again)
                add([(m, num), (-(rate - h), den)], 0.0, np.inf, f"{ind} {zone} rounding", again=again)
                contributors = self.contributors[ind] if self.sensitive[ind] else set()
                add([(1.0, den)], threshold if "denominator" in contributors else 1.0, np.inf, f"{ind} {zone} exists",
                    again=again)
                if "numerator" in contributors:
                    if rate - h > 0:  # the numerator is not 0, so it is at least the threshold
                        add([(1.0, num)], threshold, np.inf, f"{ind} {zone} numerator", again=again)
                    else:
                        disjunction([(1.0, num)], again)
                if "complement" in contributors:
                    if rate + h < m:
                        add([(1.0, den), (-1.0, num)], threshold, np.inf, f"{ind} {zone} complement", again=again)
                    else:
                        disjunction([(1.0, den), (-1.0, num)], again)
                if num[1] not in self.counted and den[1] not in self.counted:
                    low_num, low_den = _rounding_bounds(rate, h, m, threshold, contributors)
                    add([(1.0, num)], low_num, np.inf, f"{ind} {zone} whole numerator", again=again)
                    add([(1.0, den)], low_den, np.inf, f"{ind} {zone} whole denominator", again=again)
                if num in index and den in index:  # both hidden, counted or not: snapped by the audit
                    term = (index[num], index[den], rate, h, m, frozenset(contributors))
                    if not (again and term in rate_terms):
                        rate_terms.add(term)
                        system.rate_terms.append(term)

        # what must stay hidden: what some release masked and none published
        by_signature: dict[tuple, int] = {}

        def protect(cell: CellKey, term: str | None, terms, family: str, zone: str) -> int | None:
            coefs, constant = linear(terms)
            if not coefs:
                return None
            signature = (tuple(sorted(coefs.items())), constant)
            if signature not in by_signature:
                by_signature[signature] = len(system.protected)
                system.protected.append(Protected(cell, term, signature[0], constant, family, zone))
            return by_signature[signature]

        members: dict[tuple[str, str], int] = {}  # (zone as named for its family, family) -> protected index
        family_measures: dict[str, tuple[str, ...]] = {}
        pinned: set[tuple] = set()
        for v in views:
            for key, st in sorted(v.status.items()):
                level, zone, ind = key
                if not self.sensitive.get(ind):
                    continue
                if self.kind.get(ind) == "count" and st == "masked":
                    measure = self.measure[ind]
                    family_measures[measure] = (measure,)
                    p = protect(key, None, [(1.0, v.name(zone, measure))], measure, zone)
                    if p is not None:
                        members[(v.member(zone, (measure,)), measure)] = p
                elif self.kind.get(ind) == "ratio":
                    num, den = self.terms[ind]
                    num_hidden = v.hidden(level, zone, num)
                    den_hidden = v.hidden(level, zone, den)
                    rate_masked = st == "masked"
                    if not (rate_masked or num_hidden or den_hidden):
                        continue
                    parts = {"numerator": ([(1.0, v.name(zone, num))], num, (num,)),
                             "denominator": ([(1.0, v.name(zone, den))], den, (den,)),
                             "complement": ([(1.0, v.name(zone, den)), (-1.0, v.name(zone, num))],
                                            f"complement of {ind}", (num, den))}
                    for term, (terms, family, measures) in parts.items():
                        if term in self.contributors[ind]:
                            family_measures[family] = measures
                            p = protect(key, term, terms, family, zone)
                            if p is not None:
                                members.setdefault((v.member(zone, measures), family), p)
                    rate = (ind, v.name(zone, num), v.name(zone, den))
                    if rate_masked and rate not in published_rates and rate not in pinned:
                        pinned.add(rate)
                        num_lin, den_lin = linear([(1.0, rate[1])]), linear([(1.0, rate[2])])
                        if not num_lin[0] and not den_lin[0]:
                            if den_lin[1] >= 1:  # both terms published: the rate is their quotient
                                system.recomputed.append(key)
                        else:
                            system.pins.append(RatePin(key, (tuple(num_lin[0].items()), num_lin[1]),
                                                       (tuple(den_lin[0].items()), den_lin[1]), self.multiplier[ind]))
        families = sorted({family for _zone, family in members})
        sums_seen: set[tuple] = set()
        for v in views:
            for parent, kids in v.obs.relations:
                for family in families:
                    measures = family_measures[family]
                    hidden = [members[(v.member(kid, measures), family)] for kid in kids
                              if (v.member(kid, measures), family) in members]
                    if len(hidden) >= 2 and (family, tuple(hidden)) not in sums_seen:
                        sums_seen.add((family, tuple(hidden)))
                        system.sums.append((f"{family} {parent}", hidden))
        return system


@dataclass(frozen=True)
class Observation:
    """One year of one publication as the reader holds it. The table being judged is the
    first; each earlier release of the study is another (`pipeline.disclosure.history`),
    its zones named by what they cover (a zone of the same communes as one of today's under
    today's code, another perimeter under a name of its own) and, where the CAF's figures
    behind it differ from today's (a correction), those figures apart (`versioned`)."""

    table: pd.DataFrame  # level, zone_code, indicator, value, status of one year
    level_of: Mapping[str, str]
    relations: tuple[tuple[str, tuple[str, ...]], ...]  # (zone, the zones it adds up), in this release's tree
    half_unit: float  # half a unit of the last decimal of its rates
    threshold: float  # its primary rule: a published rate's contributors are 0 or at least this
    tag: str = ""  # the release's id
    versioned: frozenset = frozenset()  # (zone, measure) of figures that are not today's


@dataclass
class _View:
    """An observation's cells as dictionaries, and how it names its figures."""

    obs: Observation
    status: dict[CellKey, str]
    value: dict[CellKey, float]
    measures_at: dict[str, set[str]]
    carriers: dict[str, list[str]]

    @classmethod
    def of(cls, obs: Observation, reader: ReaderModel) -> _View:
        table = obs.table
        keys = list(zip(table["level"].tolist(), table["zone_code"].tolist(), table["indicator"].tolist()))
        statuses = table["status"].tolist()
        status = dict(zip(keys, statuses))
        value = {k: float(v) for k, s, v in zip(keys, statuses, table["value"].tolist()) if s == "published"}
        measures_at: dict[str, set[str]] = defaultdict(set)
        for _level, zone, ind in status:
            if reader.kind.get(ind) == "count":
                measures_at[zone].add(reader.measure[ind])
            elif reader.kind.get(ind) == "ratio":
                measures_at[zone].update(reader.terms[ind])
        return cls(obs, status, value, measures_at, reader.carriers)

    def name(self, zone: str, measure: str) -> tuple[str, str]:
        if (zone, measure) in self.obs.versioned:
            return (f"{zone}@{self.obs.tag}", measure)
        return (zone, measure)

    def member(self, zone: str, measures: tuple[str, ...]) -> str:
        """The zone as a sum names it: apart when one of the family's figures is."""
        return f"{zone}@{self.obs.tag}" if any((zone, m) in self.obs.versioned for m in measures) else zone

    def hidden(self, level: str, zone: str, measure: str) -> bool:
        """A term of a rate whose count indicator is masked in that zone."""
        return any(self.status.get((level, zone, ind)) == "masked" for ind in self.carriers.get(measure, ()))


def _rounding_bounds(rate: float, half: float, multiplier: float, threshold: float,
                     contributors: set[str], limit: int = 100_000) -> tuple[float, float]:
    """The smallest whole numerator and denominator a published rate allows
    (`allowed_terms` at the first denominator that has a numerator): a rate of 66.7 %
    with its complement 0 or at least 5 needs 10 / 15, not 4 / 6."""
    start = int(threshold) if "denominator" in contributors else 1
    for d in range(start, limit):
        dens, nums = allowed_terms(rate, half, multiplier, threshold, frozenset(contributors), d, d)
        if dens:
            return float(nums[0]), float(d)
    return 0.0, float(start)


def allowed_terms(rate: float, half: float, multiplier: float, threshold: float, contributors: frozenset,
                  low: int, high: int) -> tuple[list[int], list[int]]:
    """The whole denominators in [low, high] a published rate allows, and the numerators
    that go with them: each d with a whole n such that the rate rounds to what is
    published and each contributor is 0 or at least the threshold."""
    dens, nums = [], set()
    for d in range(max(low, 1), high + 1):
        if "denominator" in contributors and 0 < d < threshold:
            continue
        first = max(math.ceil((rate - half) * d / multiplier - 1e-9), 0)
        last = math.floor((rate + half) * d / multiplier + 1e-9)
        found = [n for n in range(first, last + 1)
                 if not ("numerator" in contributors and 0 < n < threshold)
                 and not ("complement" in contributors and (d - n < 0 or 0 < d - n < threshold))]
        if found:
            dens.append(d)
            nums.update(found)
    return dens, sorted(nums)
