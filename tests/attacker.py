"""An attacker against the published indicators, written apart from the audit.

It reads only what a reader gets (the published table, the zones, the indicator
definitions and the public policy) and the reader facts of the published contract
(config/disclosure.yaml, `reader:`):

- every measure adds up from the zones under a zone to that zone (counts and the hidden
  numerator and denominator of rates), hence the complements (den - num) too;
- a published rate r (rounded to `rate_decimals`) says (r - h) den <= mult num <= (r + h) den
  with h half a rounding step, den >= 1, and each contributor the policy lists for it
  (numerator, denominator, complement) is 0 or at least the threshold;
- "s" (masked) and "nd" (not available) tell nothing;
- measures are non-negative whole numbers (except the fractional ones);
- the policy's inequalities between measures of one zone and year.

Two attackers share the model of those facts (`Model`) and nothing else:

- `propagation_attack`: integer bounds propagation over the linear facts, iterated to a
  fixpoint, with the "0 or >= threshold" disjunctions as holes in the domains, singleton
  case splits on them, and probes (refutation by propagation plus one level of case
  splits) on every hidden figure; it scales to the whole sample;
- `exact_attack`: min and max of every hidden figure and sum in whole numbers with
  scipy.optimize.milp (HiGHS), the disjunctions as binaries; for small tables.

(in `tests/attacker_propagation.py` and `tests/attacker_exact.py`; this module holds the
model, the truth check and the comparison with the audit). Each returns the `Leak`s it proves.
Given the confidential table, every interval the
attacker derives (not only the leaks) is checked against the truth: an interval that
misses the truth means the attacker (or the contract it relies on) is wrong, and
`AttackerWrong` is raised.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd

INF = math.inf
EPS = 1e-6
BIG = 100_000  # the exact attacker's upper bound on any measure (small tables only)

Cell = tuple[str, str, str]  # (level, zone_code, indicator)


class AttackerWrong(AssertionError):
    """The attacker claimed something the confidential truth contradicts."""


class Contradiction(AssertionError):
    """The published table contradicts the reader facts the attacker assumes."""


@dataclass(frozen=True)
class Reader:
    """Which facts the reader uses. The defaults are the published contract; the other
    switches reproduce readers of older legends (for the issue's findings)."""

    primary_rule: bool = True  # a published rate's contributors are 0 or >= threshold
    inequalities: bool = True  # the policy's inequalities between measures
    masked_rate_exists: bool = False  # old legend: "s" on a rate, unlike "nd", says den >= 1
    masked_count_nonzero: bool = False  # old legend: "s ... ce n'est pas un zéro"


@dataclass(frozen=True)
class Leak:
    year: int
    problem: str  # pinned | small | small_sum | rate_recomputed
    figure: str  # what is proven, in words
    cells: tuple[Cell, ...]  # the published cells the figure is about
    low: float
    high: float
    truth: float | None
    key: tuple = field(compare=False, default=())  # identity of the figure across attackers
    names: tuple = field(compare=False, default=())  # (cell, term) pairs an audit finding may name it by

    def __str__(self) -> str:
        return (f"{self.year} {self.problem}: {self.figure} in [{self.low:g}, {self.high:g}]"
                f" (truth {self.truth})")


@dataclass
class Target:
    """A hidden figure (one variable) or a sum of hidden figures of one kind under one zone."""

    var: int
    year: int
    label: str
    cells: set  # (cell, term): term None for a count, else the rate's numerator/denominator/complement
    is_sum: bool
    key: tuple
    members: tuple = ()  # the summed variables, for a sum


@dataclass
class RateTarget:
    num: int
    den: int
    mult: float
    year: int
    label: str
    cell: Cell


class Model:
    """The reader's facts about one published table, as linear constraints over
    integer (or fractional) variables, plus the disjunctions x not in [1, threshold - 1]."""

    def __init__(self, published: pd.DataFrame, zones: pd.DataFrame, indicators, policy,
                 reader: Reader = Reader()):
        self.policy = policy
        self.reader = reader
        self.threshold = int(policy.threshold)
        self.names: list[tuple] = []  # (level, zone, year, measure-or-('complement', rate))
        self.index: dict[tuple, int] = {}
        self.lo: list[float] = []
        self.hi: list[float] = []
        self.integer: list[bool] = []
        self.disjunctive: list[bool] = []
        self.cons: list[tuple[list[int], list[float], float]] = []  # sum a x <= b
        self.targets: list[Target] = []
        self.rate_targets: list[RateTarget] = []
        self._build(published, zones, indicators, policy)

    # -- variables and constraints -------------------------------------------------------

    def var(self, level: str, zone: str, year: int, name) -> int:
        key = (zone, int(year), name)
        if key in self.index:
            return self.index[key]
        i = len(self.names)
        self.index[key] = i
        self.names.append((level, zone, int(year), name))
        fractional = isinstance(name, str) and name in self.policy.fractional_measures
        is_complement = isinstance(name, tuple)
        self.lo.append(-INF if is_complement else 0.0)
        self.hi.append(INF)
        self.integer.append(not fractional)
        self.disjunctive.append(False)
        return i

    def le(self, coefs: dict[int, float], rhs: float) -> None:
        coefs = {i: a for i, a in coefs.items() if a != 0}
        self.cons.append((list(coefs), list(coefs.values()), float(rhs)))

    def eq(self, coefs: dict[int, float], rhs: float) -> None:
        self.le(coefs, rhs)
        self.le({i: -a for i, a in coefs.items()}, -rhs)

    def _build(self, published, zones, indicators, policy) -> None:
        defs = {i.id: i for i in indicators.indicators}
        present = [i for i in published["indicator"].unique() if i in defs]
        sensitive = {i for i in present if policy.of(i).sensitive}
        measures_of = {i: ((defs[i].measure,) if defs[i].kind == "count" else (defs[i].numerator, defs[i].denominator))
                       for i in present}
        relevant = {m for i in sensitive for m in measures_of[i]}
        pairs = list(policy.inequalities) if self.reader.inequalities else []
        grew = True
        while grew:  # measures linked to a sensitive one by an inequality
            grew = False
            for a, b in pairs:
                if (a in relevant) != (b in relevant):
                    relevant |= {a, b}
                    grew = True
        used = [i for i in present if set(measures_of[i]) & relevant]
        count_of = {defs[i].measure: i for i in used if defs[i].kind == "count"}
        rates = [i for i in used if defs[i].kind == "ratio"]
        self.count_of = count_of

        pub = published[published["indicator"].isin(used)]
        parent = {}
        level_of = {}
        for z in zones.itertuples(index=False):
            level_of[str(z.zone_code)] = str(z.level)
            if isinstance(z.parent_code, str) and z.parent_code:
                parent[str(z.zone_code)] = str(z.parent_code)
        for z in pub[["level", "zone_code", "parent_code"]].drop_duplicates().itertuples(index=False):
            level_of.setdefault(str(z.zone_code), str(z.level))
            if isinstance(z.parent_code, str) and z.parent_code and str(z.zone_code) not in parent:
                parent[str(z.zone_code)] = str(z.parent_code)
        children = defaultdict(list)
        for c, p in parent.items():
            children[p].append(c)
        self.parent, self.children, self.level_of = parent, children, level_of

        status = {}
        value = {}
        for r in pub.itertuples(index=False):
            key = (str(r.zone_code), int(r.year), str(r.indicator))
            status[key] = str(r.status)
            value[key] = float(r.value) if pd.notna(r.value) else None
        self.status = status
        # a variable for every measure of every published row
        for (zone, year, ind), _st in status.items():
            for m in measures_of[ind]:
                self.var(level_of[zone], zone, year, m)
        # counts: published values are known
        for (zone, year, ind), st in status.items():
            if defs[ind].kind != "count":
                continue
            i = self.var(level_of[zone], zone, year, defs[ind].measure)
            if st == "published":
                v = value[(zone, year, ind)]
                self.lo[i] = max(self.lo[i], v)
                self.hi[i] = min(self.hi[i], v)
            elif st == "masked" and self.reader.masked_count_nonzero and policy.of(ind).sensitive:
                self.lo[i] = max(self.lo[i], 1.0)
        # complements of rates whose policy lists them
        complement_of = {}
        for (zone, year, ind), _st in list(status.items()):
            if defs[ind].kind == "ratio" and "complement" in policy.of(ind).contributors:
                lvl = level_of[zone]
                num = self.var(lvl, zone, year, defs[ind].numerator)
                den = self.var(lvl, zone, year, defs[ind].denominator)
                c = self.var(lvl, zone, year, ("complement", ind))
                self.eq({c: 1.0, den: -1.0, num: 1.0}, 0.0)
                complement_of[(zone, year, ind)] = c
        # additivity of every variable's measure (and of complements) over the children
        for key, i in list(self.index.items()):
            zone, year, name = key
            kids = children.get(zone)
            if not kids:
                continue
            coefs = {i: 1.0}
            for k in kids:
                j = self.var(level_of.get(k, "?"), k, year, name)
                coefs[j] = coefs.get(j, 0.0) - 1.0
            self.eq(coefs, 0.0)
        # inequalities between measures of one zone and year
        for a, b in pairs:
            for (zone, year, name), i in list(self.index.items()):
                if name == a and (zone, year, b) in self.index:
                    self.le({i: 1.0, self.index[(zone, year, b)]: -1.0}, 0.0)
        # published rates
        step = 10.0 ** -policy.rate_decimals
        for (zone, year, ind), st in status.items():
            if defs[ind].kind != "ratio":
                continue
            lvl = level_of[zone]
            num = self.var(lvl, zone, year, defs[ind].numerator)
            den = self.var(lvl, zone, year, defs[ind].denominator)
            mult = float(defs[ind].multiplier or 1.0)
            if st == "published":
                r = value[(zone, year, ind)]
                h = step / 2 + 1e-9 * max(1.0, abs(r))
                self.lo[den] = max(self.lo[den], 1.0)
                self.le({num: mult, den: -(r + h)}, 0.0)
                self.le({num: -mult, den: r - h}, 0.0)
                if self.reader.primary_rule and policy.of(ind).sensitive:
                    for term in policy.of(ind).contributors:
                        if term == "numerator":
                            self.disjunctive[num] = True
                        elif term == "denominator":
                            self.disjunctive[den] = True
                        elif term == "complement":
                            self.disjunctive[complement_of[(zone, year, ind)]] = True
            elif st == "masked" and self.reader.masked_rate_exists:
                self.lo[den] = max(self.lo[den], 1.0)
        # targets: the hidden figures
        figures: dict[int, Target] = {}

        def add(i: int, cells: set) -> None:
            level, zone, year, name = self.names[i]
            if self.lo[i] == self.hi[i] and name in count_of:  # a published count: not hidden
                return
            if i not in figures:
                what = f"{name[1]} complement" if isinstance(name, tuple) else name
                figures[i] = Target(i, year, f"{level} {zone} {what}", set(), False, ("figure", zone, year, name))
            figures[i].cells |= cells

        def rate_cells(zone, year, measure) -> set:
            return {((level_of[zone], zone, r), role) for r in rates if (zone, year, r) in status
                    for role in ("numerator", "denominator") if getattr(defs[r], role) == measure}

        for (zone, year, ind), st in status.items():
            if ind not in sensitive:
                continue
            lvl = level_of[zone]
            if defs[ind].kind == "count" and st == "masked":
                m = defs[ind].measure
                add(self.index[(zone, year, m)], {((lvl, zone, ind), None)} | rate_cells(zone, year, m))
            elif defs[ind].kind == "ratio":
                terms = {"numerator": defs[ind].numerator, "denominator": defs[ind].denominator}
                masked_term = any(status.get((zone, year, count_of.get(m))) == "masked" for m in terms.values())
                if not (st == "masked" or (st == "published" and masked_term)):
                    continue
                for term in policy.of(ind).contributors:
                    if term in terms:
                        m = terms[term]
                        cells = {((lvl, zone, ind), term)}
                        if m in count_of and (zone, year, count_of[m]) in status:
                            cells.add(((lvl, zone, count_of[m]), None))
                        add(self.index[(zone, year, m)], cells)
                    elif term == "complement":
                        c = complement_of[(zone, year, ind)]
                        if not all(self.lo[j] == self.hi[j]
                                   for j in (self.index[(zone, year, terms["numerator"])],
                                             self.index[(zone, year, terms["denominator"])])):
                            # a finding on a term of the rate names it too (the root of the pin)
                            add(c, {((lvl, zone, ind), "complement")}
                                | {((lvl, zone, count_of[m]), None) for m in terms.values()
                                   if m in count_of and (zone, year, count_of[m]) in status})
                if st == "masked":
                    self.rate_targets.append(RateTarget(
                        self.index[(zone, year, terms["numerator"])], self.index[(zone, year, terms["denominator"])],
                        float(defs[ind].multiplier or 1.0), year, f"{lvl} {zone} {ind}", (lvl, zone, ind)))
        self.targets = list(figures.values())
        # sums of hidden figures of one kind under one zone
        groups = defaultdict(list)
        for t in self.targets:
            _, zone, year, name = self.names[t.var]
            if zone in parent:
                groups[(parent[zone], year, name)].append(t)
        for (p, year, name), members in groups.items():
            if len(members) < 2:
                continue
            s = len(self.names)
            self.names.append((level_of.get(p, "?"), p, year, ("sum", name)))
            self.lo.append(-INF if isinstance(name, tuple) else 0.0)
            self.hi.append(INF)
            self.integer.append(all(self.integer[t.var] for t in members))
            self.disjunctive.append(False)
            coefs = {s: 1.0}
            for t in members:
                coefs[t.var] = -1.0
            self.eq(coefs, 0.0)
            # and the same sum read off the parent: s = parent - the other children
            par = self.index.get((p, year, name))
            if par is not None:
                inside = {self.names[t.var][1] for t in members}
                coefs = {s: 1.0, par: -1.0}
                for k in children[p]:
                    if k not in inside:
                        coefs[self.index[(k, year, name)]] = 1.0
                self.eq(coefs, 0.0)
            what = f"{name[1]} complement" if isinstance(name, tuple) else name
            kids = ", ".join(sorted(self.names[t.var][1] for t in members))
            self.targets.append(Target(s, year, f"sum of {what} over {kids} (under {p})",
                                       set().union(*(t.cells for t in members)), True,
                                       ("sum", p, year, name, tuple(sorted(self.names[t.var][1] for t in members))),
                                       tuple(t.var for t in members)))

    # -- the verdict on an interval --------------------------------------------------------

    def leak_of(self, t: Target, lo: float, hi: float) -> str | None:
        T = self.threshold
        zero_ok = bool(self.policy.zero_publishable)
        if t.is_sum:
            if 1 <= hi <= T - 1 and lo >= 0 - EPS:
                return "small_sum"
            if not zero_ok and hi <= 0 <= lo:
                return "small_sum"
            return None
        if abs(hi - lo) < EPS and (abs(lo) > EPS or not zero_ok):
            return "pinned"
        if lo >= -EPS and 1 - EPS <= hi <= T - 1 + EPS:
            return "small"
        return None


# -- truth -------------------------------------------------------------------------------

def truths(model: Model, confidential: pd.DataFrame, indicators) -> dict[tuple, float]:
    """(zone, year, measure) -> the confidential value, where the confidential table has it."""
    defs = {i.id: i for i in indicators.indicators}
    out: dict[tuple, float] = {}
    clash = []
    for r in confidential.itertuples(index=False):
        d = defs.get(r.indicator)
        if d is None:
            continue
        pairs = [(d.measure, r.value)] if d.kind == "count" else [(d.numerator, r.numerator),
                                                                  (d.denominator, r.denominator)]
        for m, v in pairs:
            if v is None or pd.isna(v):
                continue
            key = (str(r.zone_code), int(r.year), m)
            if key in out and abs(out[key] - float(v)) > 1e-6:
                clash.append((key, out[key], float(v)))
            out[key] = float(v)
    if clash:
        raise AttackerWrong(f"the confidential table gives two values to one measure: {clash[:5]}")
    return out


class _Truth:
    """Truth of every model variable, complements and sums included (None if unknown)."""

    def __init__(self, model: Model, confidential: pd.DataFrame, indicators):
        self.model = model
        base = truths(model, confidential, indicators)
        defs = {i.id: i for i in indicators.indicators}
        self.values: list[float | None] = []
        for _level, zone, year, name in model.names:
            if isinstance(name, str):
                self.values.append(base.get((zone, year, name)))
            elif name[0] == "complement":
                d = defs[name[1]]
                num, den = base.get((zone, year, d.numerator)), base.get((zone, year, d.denominator))
                self.values.append(None if num is None or den is None else den - num)
            else:
                self.values.append(None)  # sums: filled below
        for t in model.targets:
            if not t.is_sum:
                continue
            s, members = t.var, t.members
            vals = [self.values[j] for j in members]
            self.values[s] = None if any(v is None for v in vals) else float(sum(vals))

    def check(self, i: int, lo: float, hi: float, what: str) -> None:
        v = self.values[i]
        if v is None:
            return
        if not (lo - 1e-6 <= v <= hi + 1e-6):
            raise AttackerWrong(f"{what}: derived [{lo}, {hi}] but the truth is {v}")


def target_leak(model: Model, t: Target, lo: float, hi: float, truth: _Truth | None, who: str) -> Leak | None:
    """What an attacker that derived [lo, hi] for a hidden figure or sum has found, if
    anything; the range checked against the truth first (an attacker must never be wrong)."""
    if truth is not None:
        truth.check(t.var, lo, hi, f"{who}: {t.year} {t.label}")
    problem = model.leak_of(t, lo, hi)
    if not problem:
        return None
    return Leak(t.year, problem, t.label, _cells(t), float(lo), float(hi),
                truth.values[t.var] if truth else None, t.key, _names(t))


def rate_leak(r: RateTarget, low: float, high: float, step: float, truth: _Truth | None, who: str) -> Leak | None:
    """A masked rate an attacker bounded within [low, high]: recomputed if narrower than one
    rounding step; the range checked against the true rate first."""
    n, d = (truth.values[r.num], truth.values[r.den]) if truth else (None, None)
    value = r.mult * n / d if n is not None and d else None
    if value is not None and not (low - 1e-6 <= value <= high + 1e-6):
        raise AttackerWrong(f"{who}: {r.year} {r.label}: rate in [{low}, {high}], truth {value}")
    if high - low < step - 1e-9:
        return Leak(r.year, "rate_recomputed", r.label, (r.cell,), low, high, value, ("rate", r.cell, r.year),
                    ((r.cell, None),))
    return None


# -- comparing with the audit --------------------------------------------------------------

def _cells(t: Target) -> tuple:
    """The cells a leak is about: its masked count cells, else the rates whose term it is."""
    counts = sorted({cell for cell, term in t.cells if term is None})
    complement = any(term == "complement" for _, term in t.cells)
    return tuple(counts) if counts and not complement else tuple(sorted({cell for cell, _ in t.cells}))


def _names(t: Target) -> tuple:
    return tuple(sorted(t.cells, key=lambda ct: (ct[0], ct[1] or "")))


def unflagged(leaks: list[Leak], audit, strict: bool = False) -> list[Leak]:
    """The leaks no audit finding names. Lenient (the default): no finding of that year
    holds one of the leak's cells. Strict: no finding names one of its cells with the
    right term (a count's finding, or the rate's finding about that hidden term)."""
    named = defaultdict(set)
    for f in audit.findings:
        for cell in f.cells:
            named[int(f.year)].add((tuple(cell), f.term) if strict else tuple(cell))
    if strict:
        return [leak for leak in leaks if not set(leak.names) & named[leak.year]]
    return [leak for leak in leaks if not set(leak.cells) & named[leak.year]]


def status_oracle(published: pd.DataFrame, confidential: pd.DataFrame, indicators) -> list[tuple]:
    """Rates shown "nd" although their hidden denominator is 0: when "nd" marks a zero
    denominator that is not published, "s" tells the reader the denominator is >= 1
    (issue 13, finding 2). Returns the (level, zone, indicator, year) of such rates."""
    defs = {i.id: i for i in indicators.indicators}
    count_of = {i.measure: i.id for i in indicators.indicators if i.kind == "count"}
    pub = published.set_index(["zone_code", "indicator", "year"])["status"].to_dict()
    out = []
    for r in confidential.itertuples(index=False):
        d = defs.get(r.indicator)
        if d is None or d.kind != "ratio" or pub.get((r.zone_code, r.indicator, r.year)) != "not_available":
            continue
        den_count = count_of.get(d.denominator)
        den_published = den_count is not None and pub.get((r.zone_code, den_count, r.year)) == "published"
        if r.denominator == 0 and not den_published:
            out.append((r.level, r.zone_code, r.indicator, int(r.year)))
    return out
