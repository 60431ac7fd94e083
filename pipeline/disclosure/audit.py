"""The independent audit of a published indicator table (convention, article 4).

What belongs here: deciding, for the reader of `pipeline.disclosure.reader` (everything
published, the legend's meaning of each status, the public primary rule, additivity of
every measure, the policy's inequalities, non-negativity and whole numbers), what that
reader can prove about each hidden figure, with HiGHS (highspy): in real numbers where that
answers with a unit to spare, in whole numbers where the linear bound straddles the
verdict's edge or the system is Diophantine (a relaxation could miss a proof there).
Findings, any of which blocks publication:

- `pinned`: a hidden figure (a masked count, a hidden numerator, denominator or
  complement of a rate) takes one value in every table consistent with what is published;
- `below_threshold`: its largest possible value lies between 1 and threshold - 1, or that
  of the sum of the hidden figures of one kind under one zone;
- `pinned` on a masked rate: its value is known within its rounding;
- `inconsistent`: no table at all agrees with what is published.
A figure proven to be 0 is no finding when the policy publishes zeros (a zero concerns no
allocataire; a reader learns no more than a published 0 would tell).

How it decides: every solve gives a complete table consistent with everything published,
and a reader cannot exclude the values it holds. A few such tables per connected
component (`Component.witness`: the hidden figures capped at the threshold maximised,
then minimised) clear most figures: one table puts the figure at the threshold or above
and another a unit apart. Only the figures they do not clear get their own questions
(`_judge`): is there a table with the figure at the threshold or above, one a unit away
from the value seen; the findings are those of the exact bounds (tested against
`witnesses=False`, which solves them). A solve that
stops at its time limit decides nothing in the figure's favour: the bound it cannot
prove counts as a finding (the audit fails safe).

What does not: what the reader knows (`reader`), solving the questions (`audit_solver`),
choosing what to mask (`suppression`), which never shares code with the audit, so a
mistake in the masking's model cannot hide here. The audit never sees a masked value.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from pipeline.disclosure import memo
from pipeline.disclosure.audit_solver import EPS, Component, components
from pipeline.disclosure.history import History
from pipeline.disclosure.policy import Policy
from pipeline.disclosure.reader import CellKey, Observation, ReaderModel, YearSystem
from pipeline.frames import as_text
from pipeline.indicators import IndicatorSet
from pipeline.tables import PUBLISHED_TABLE, primary_key

INTERVAL_COLUMNS = [*primary_key(PUBLISHED_TABLE), "low", "high"]
# what a reader reads of the published table: the audit's fingerprints are of these columns
AUDITED_COLUMNS = [*primary_key(PUBLISHED_TABLE), "value", "status"]
ALL_SUBSETS_UP_TO = 6  # sums with at most this many hidden figures: every subset is checked
PAIRS_UP_TO = 16  # beyond that, the whole set and the pairs only up to this many


@dataclass(frozen=True)
class Finding:
    year: int
    problem: str  # pinned | below_threshold | inconsistent
    cells: tuple[CellKey, ...]
    relation: str | None = None
    term: str | None = None  # numerator | denominator | complement of a rate, None: the cell itself

    def describe(self) -> str:
        """Codes only: never the interval, which would say what the masked value is."""
        cells = " + ".join(f"{ind} {level} {zone}" for level, zone, ind in self.cells)
        if self.term:
            cells = f"{self.term} of {cells}"
        what = {
            "pinned": "can be recomputed exactly",
            "below_threshold": "can be proven below the threshold",
            "inconsistent": "published figures contradict each other",
        }[self.problem]
        return f"{self.year}: {cells}: {what}" + (f" (relation {self.relation})" if self.relation else "")


@dataclass
class AuditResult:
    findings: list[Finding] = field(default_factory=list)
    # masked cells: keys, year, low, high (a range the reader cannot narrow; see the module's docstring)
    intervals: pd.DataFrame = field(default_factory=pd.DataFrame)
    cells_checked: int = 0
    groups_checked: int = 0
    linear_programmes: int = 0  # solves (mixed-integer programmes), the name kept for the metadata
    # clean (year, zone tree) parts: fingerprint -> (year, root, record), `audit_published`'s `cleared`
    parts: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    parts_audited: int = 0
    parts_reused: int = 0  # parts found in `cleared`, not audited again
    known_before: int = 0  # findings the earlier releases alone already give (`_excused`): not the table's

    @property
    def passed(self) -> bool:
        return not self.findings


# From this many cells to audit, `audit_published` audits its parts in worker processes.
PARALLEL_MIN_CELLS = 4_000


def _roots(zones: pd.DataFrame) -> dict[str, str]:
    """Each zone's top-level zone: no relation a reader knows crosses two of those trees."""
    parent_of = {c: p for c, p in zip(zones["zone_code"], zones["parent_code"]) if isinstance(p, str)}
    root_of: dict[str, str] = {}
    for code in zones["zone_code"]:
        chain = [code]
        while chain[-1] in parent_of and chain[-1] not in root_of and len(chain) <= len(parent_of):
            chain.append(parent_of[chain[-1]])
        top = root_of.get(chain[-1], chain[-1])
        root_of.update({c: top for c in chain})
    return root_of


@dataclass(frozen=True)
class _Part:
    """A year of one zone tree: nothing a reader knows relates it to any other part."""

    year: int
    root: str
    rows: np.ndarray  # positions in the published frame
    zone_rows: np.ndarray  # positions in the zones frame


def audit_published(
    published: pd.DataFrame, zones: pd.DataFrame, indicators: IndicatorSet, policy: Policy, sums: bool = True,
    witnesses: bool = True, workers: int | None = None, relaxed: bool = False,
    cleared: Mapping[str, str] | None = None, history: History | None = None,
) -> AuditResult:
    """Audit `published` (level, zone_code, indicator, year, value, status): see
    `audit_table`. Each year of each zone tree (an EPCI and what lies under it) shares no
    constraint with any other, so the table is audited part by part: from
    `PARALLEL_MIN_CELLS` cells to audit (or `workers` > 1) in that many worker processes
    (default: one per core); the verdict is the same, the findings listed year by year.

    `cleared`: the `parts` of earlier audits (fingerprint -> record, `pipeline.disclosure.memo`):
    a part whose fingerprint is there (same published rows in the same order, same zones,
    policy, indicators, options and audit code) was audited clean and is not audited again;
    its counts are the record's, and it has no intervals here. The result's `parts` hold
    the record of every clean part, audited now or before.

    `history`: the earlier releases of the study (`pipeline.disclosure.history`): the
    reader holds them beside the table, so each part is audited against the union (a part
    being then a year of the zone trees an earlier release's zone ties together).
    """
    published = as_text(published)  # text read compactly: plain text cells again
    if history is not None and not history.releases:
        history = None
    if cleared is None and (workers == 1 or (workers is None and len(published) < PARALLEL_MIN_CELLS)):
        prior = None if history is None else {int(y): history.observations(int(y))
                                              for y in published["year"].unique()}
        return audit_table(published, zones, indicators, policy, sums, witnesses, relaxed, prior)  # as a whole, here
    settings = (indicators, policy, sums, witnesses, relaxed)
    parts = _parts(published, zones, history)
    cells = published[[c for c in AUDITED_COLUMNS if c in published.columns]]
    extras = None if history is None else [history.digest(p.year, p.root) for p in parts]
    fingerprints = memo.part_fingerprints(cells, zones, [(p.rows, p.zone_rows) for p in parts], policy, indicators,
                                          "audit", sums, witnesses, relaxed, extras=extras)
    reused = {f: counts for f in fingerprints if (counts := _counts((cleared or {}).get(f))) is not None}
    todo = [(part, f) for part, f in zip(parts, fingerprints) if f not in reused]
    if workers is None:
        workers = (os.cpu_count() or 1) if sum(len(p.rows) for p, _ in todo) >= PARALLEL_MIN_CELLS else 1
    tasks = [(published.iloc[p.rows], zones.iloc[p.zone_rows],
              None if history is None else {p.year: history.observations(p.year, p.root)}) for p, _ in todo]
    if workers <= 1 or len(tasks) < 2:
        audits = [_audit_share(task, settings) for task in tasks]
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
            audits = list(pool.map(_audit_share, tasks, [settings] * len(tasks), chunksize=_chunk(len(tasks), workers)))
    result = merge_results(audits, sorted_by_year=True)
    for (part, f), audit in zip(todo, audits):
        if audit.passed:
            counts = [audit.cells_checked, audit.groups_checked, audit.linear_programmes]
            result.parts[f] = (part.year, part.root, memo.dumps({"counts": counts}))
    for part, f in zip(parts, fingerprints):
        if f in reused:
            result.cells_checked += reused[f][0]
            result.groups_checked += reused[f][1]
            result.parts[f] = (part.year, part.root, cleared[f])
    result.parts_audited, result.parts_reused = len(todo), len(reused)
    return result


def _parts(published: pd.DataFrame, zones: pd.DataFrame, history: History | None = None) -> list[_Part]:
    root_of = _roots(zones)
    if history is not None:  # trees an earlier release's zone ties together are one part
        root_of = {code: history.group(root) for code, root in root_of.items()}
    roots = published["zone_code"].map(root_of).fillna(published["zone_code"]).to_numpy()
    zone_roots = zones["zone_code"].map(root_of).fillna(zones["zone_code"]).to_numpy()
    zone_rows = pd.Series(zone_roots).groupby(zone_roots, sort=False).indices
    groups = pd.DataFrame({"year": published["year"].to_numpy(), "root": roots}).groupby(["year", "root"]).indices
    empty = np.zeros(0, dtype=np.int64)
    return [_Part(int(year), str(root), np.sort(rows), zone_rows.get(root, empty))
            for (year, root), rows in sorted(groups.items())]


def _counts(record: str | None) -> tuple[int, int, int] | None:
    """(cells, sums, solves) of a clean part's record; None if there is none or it cannot be
    read (then the part is audited again)."""
    if record is None:
        return None
    try:
        cells, groups, solves = memo.loads(record)["counts"]
        return int(cells), int(groups), int(solves)
    except (ValueError, KeyError, TypeError):
        return None


def _chunk(tasks: int, workers: int) -> int:
    """Parts handed to a worker at a time: a few rounds per worker (balance), not one part
    a round (a national table has thousands of small parts)."""
    return max(1, tasks // (workers * 8))


def _audit_share(task: tuple, settings: tuple) -> AuditResult:
    published, zones, prior = task
    return audit_table(published, zones, *settings, prior)


def merge_results(parts: list[AuditResult], sorted_by_year: bool = False) -> AuditResult:
    """One result of the audits of independent parts (findings in their order, or by year)."""
    intervals = [p.intervals for p in parts if len(p.intervals)]
    findings = [f for p in parts for f in p.findings]
    return AuditResult(
        findings=sorted(findings, key=lambda f: f.year) if sorted_by_year else findings,
        intervals=pd.concat(intervals, ignore_index=True) if intervals else pd.DataFrame(columns=INTERVAL_COLUMNS),
        cells_checked=sum(p.cells_checked for p in parts),
        groups_checked=sum(p.groups_checked for p in parts),
        linear_programmes=sum(p.linear_programmes for p in parts),
        known_before=sum(p.known_before for p in parts),
    )


def audit_table(
    published: pd.DataFrame, zones: pd.DataFrame, indicators: IndicatorSet, policy: Policy, sums: bool = True,
    witnesses: bool = True, relaxed: bool = False, prior: Mapping[int, Sequence[Observation]] | None = None,
    excuse: bool = True,
) -> AuditResult:
    """Audit `published` (level, zone_code, indicator, year, value, status).

    `zones` gives the hierarchy (level, zone_code, parent_code): each zone equals the sum
    of the zones whose parent_code is its code, for every measure. `sums=False` checks
    single figures only (enough to steer the masking). `witnesses=False` solves the exact
    bounds of every figure and sum (same findings, many more solves: the reference the
    tests compare the witnesses against). `relaxed=True` reasons in real numbers only: a
    quicker, weaker reader that the masking steers its rounds with before the real one.
    `prior`: per year, what earlier releases published of it (`reader.Observation`); a
    finding the earlier releases alone give is left out (`_excused`, counted in
    `known_before`) unless `excuse` is False.
    """
    result = AuditResult()
    reader = ReaderModel(indicators, policy)
    children_of: dict[str, list[str]] = defaultdict(list)
    level_of = dict(zip(zones["zone_code"], zones["level"]))
    for code, parent in zip(zones["zone_code"], zones["parent_code"]):
        if isinstance(parent, str):
            children_of[parent].append(code)
    threshold = float(policy.threshold)
    intervals = []
    years = published["year"].to_numpy()
    # a sub-problem's table is of one year: no grouping (it cost as much as judging a small one)
    by_year = [(years[0], published)] if len(years) and (years == years[0]).all() else published.groupby("year")
    for year, table in by_year:
        year = int(year)
        system = reader.year_system(table, level_of, children_of, (prior or {}).get(year, ()))
        _audit_year(year, system, threshold, policy.zero_publishable, sums, witnesses, result, intervals,
                    10.0 ** (-policy.rate_decimals), relaxed)
    names = INTERVAL_COLUMNS
    result.intervals = pd.DataFrame(dict(zip(names, map(list, zip(*intervals))))) if intervals else \
        pd.DataFrame(columns=names)
    if prior and excuse and any(f.problem != "inconsistent" for f in result.findings):
        result.findings, result.known_before = _excused(published, result.findings, zones, indicators, policy,
                                                         sums, witnesses, relaxed, prior)
    return result


def _excused(published: pd.DataFrame, findings: list[Finding], zones, indicators, policy, sums, witnesses, relaxed,
             prior) -> tuple[list[Finding], int]:
    """The findings that the earlier releases alone already give a reader, left out: the
    same figure judged with nothing of the new table but its zones (its cells unknown, the
    found ones masked). A figure the earlier releases pin (an RPE whose commune moved, the
    old total minus the commune they published) is no disclosure of the new table, and
    nothing the new table masks can hide it. Returns the findings kept and the number left out."""
    named = {cell for f in findings for cell in f.cells}
    keys = list(zip(published["level"], published["zone_code"], published["indicator"]))
    blank = published.assign(status=["masked" if k in named else "not_available" for k in keys], value=np.nan)
    before = audit_table(blank, zones, indicators, policy, sums, witnesses, relaxed, prior, excuse=False)
    known: dict[tuple, set[str]] = defaultdict(set)
    for f in before.findings:
        if f.problem != "inconsistent":
            known[(f.year, f.cells, f.term, f.relation)].add(f.problem)

    def given(f: Finding) -> bool:
        # only as strong a finding is given: earlier releases proving a figure below the
        # threshold do not excuse the new table for pinning it (a total published now, less
        # a sibling published before, is the commune)
        was = known.get((f.year, f.cells, f.term, f.relation), set())
        return f.problem in was or "pinned" in was

    kept = [f for f in findings if f.problem == "inconsistent" or not given(f)]
    return kept, len(findings) - len(kept)


def _audit_year(year: int, system: YearSystem, threshold: float, zero_publishable: bool, sums: bool,
                witnesses: bool, result: AuditResult, intervals: list, rate_unit: float, relaxed: bool) -> None:
    for what in system.contradictions:
        result.findings.append(Finding(year, "inconsistent", (), what))
    # a masked rate ties its numerator and denominator: they must be solved in one model
    ties = [({c: 1.0 for c, _v in (*pin.numerator[0], *pin.denominator[0])}, 0.0) for pin in system.pins]
    root = components(len(system.names), system.rows, system.disjunctions + ties)
    cols_of: dict[int, list[int]] = defaultdict(list)
    for c, r in enumerate(root):
        cols_of[r].append(c)
    rows_of: dict[int, list[int]] = defaultdict(list)  # row indices
    for k, row in enumerate(system.rows):
        rows_of[root[next(iter(row[0]))]].append(k)
    disj_of: dict[int, list] = defaultdict(list)
    for d in system.disjunctions:
        disj_of[root[next(iter(d[0]))]].append(d)
    prot_of: dict[int, list[int]] = defaultdict(list)
    for p, item in enumerate(system.protected):
        prot_of[root[item.coefs[0][0]]].append(p)
    pins_of: dict[int, list[int]] = defaultdict(list)
    for q, pin in enumerate(system.pins):
        first = (pin.numerator[0] or pin.denominator[0])[0][0]
        pins_of[root[first]].append(q)
    groups = _sum_groups(system) if sums else []
    component_of: dict[int, Component] = {}
    solvers: list[Component] = []
    for r in sorted(set(prot_of) | set(pins_of)):
        def build(rows: list[int], r: int = r) -> Component:
            comp = Component(cols_of[r], system, [system.rows[k] for k in rows], disj_of[r], prot_of[r], pins_of[r],
                             threshold, rate_unit, relaxed)
            if not relaxed:
                comp.snap(system.rate_terms, threshold)
            return comp

        comp = _without_refuted(build, rows_of[r], set(system.assumed))
        for k, (_name, members) in enumerate(groups):
            if members and all(m in comp.slot for m in members):
                comp.watch_sum(k, members)
        solvers.append(comp)
        if not comp.consistent():
            # no table agrees with what is published: one finding for the component, nothing else to judge
            cells = tuple(dict.fromkeys(system.protected[p].cell for p in prot_of[r])) or \
                tuple(system.pins[q].cell for q in pins_of[r])
            result.findings.append(Finding(year, "inconsistent", cells[:1], None))
            continue
        for p in prot_of[r]:
            component_of[p] = comp
        if witnesses:
            comp.witness()
        for q in pins_of[r]:
            _judge_pin(year, system, comp, q, result)
    for cell in system.recomputed:  # a masked rate beside both its terms, published
        result.cells_checked += 1
        result.findings.append(Finding(year, "pinned", (cell,), None))

    for p, item in enumerate(system.protected):
        comp = component_of.get(p)
        if comp is None:
            continue
        result.cells_checked += 1
        found = _judge(comp, p, system, threshold, zero_publishable, witnesses)
        if found is None:
            result.findings.append(Finding(year, "inconsistent", (item.cell,), None, item.term))
            continue
        problem, low, high = found
        if problem:
            result.findings.append(Finding(year, problem, (item.cell,), None, item.term))
        if item.term is None:
            intervals.append((*item.cell, year, low, high))
    for k, (name, members) in enumerate(groups):
        comps = {id(component_of.get(m)): component_of.get(m) for m in members}
        if None in comps.values():
            continue
        result.groups_checked += 1
        if len(comps) == 1 and witnesses:
            comp = next(iter(comps.values()))
            seen, seen_whole = comp.sum_seen(k)
            margin = 0.0 if comp.relaxed else (np.inf if comp.diophantine else 1.0)
            if seen_whole >= threshold - EPS or seen >= threshold + margin - EPS:
                continue
        parts = []
        for comp in comps.values():  # the parts in separate components vary independently
            part = [m for m in members if component_of[m] is comp]
            expr: dict[int, float] = defaultdict(float)
            constant = 0.0
            for m in part:
                coefs, c0 = comp.expr[m]
                constant += c0
                for c, v in coefs.items():
                    expr[c] += v
            parts.append((comp, (dict(expr), constant), part))
        if len(parts) == 1 and witnesses:
            comp, expr, _part = parts[0]
            if comp.reaches(expr, threshold):
                continue
            small = not (zero_publishable and not comp.reaches(expr, 1.0))
        else:
            high = 0.0
            for comp, expr, part in parts:
                found = comp.maximum(expr, _integral(comp, system, part))
                if found is None:
                    high = math.nan
                    break
                high += found[1]
            if math.isnan(high):
                continue  # inconsistent: already found on its cells
            small = high < threshold - EPS and not (high < 1 - EPS and zero_publishable)
        if small:
            cells = tuple(system.protected[m].cell for m in members)
            terms = {system.protected[m].term for m in members}
            result.findings.append(Finding(year, "below_threshold", cells, name,
                                           terms.pop() if len(terms) == 1 else None))
    result.linear_programmes += sum(c.solves for c in solvers)


def _without_refuted(build, rows: list[int], assumed: set[int]) -> Component:
    """The component's model without the assumptions what is published refutes: a reader
    who finds a commune's IRIS contradicting its figure knows the two sources disagree there
    and reasons without that relation. Each assumption is tried alone beside the known rows;
    if those kept still contradict each other together, the reader keeps none."""
    comp = build(rows)
    mine = [k for k in rows if k in assumed]
    if not mine or comp.consistent():
        return comp
    known = [k for k in rows if k not in assumed]
    kept = [k for k in mine if build(known + [k]).consistent()]
    comp = build(known + kept)
    return comp if comp.consistent() else build(known)


def _sum_groups(system: YearSystem) -> list[tuple[str, list[int]]]:
    groups = []
    for name, hidden in system.sums:
        chosen = [tuple(hidden)]
        if len(hidden) <= ALL_SUBSETS_UP_TO:
            chosen += [g for size in range(2, len(hidden)) for g in combinations(hidden, size)]
        elif len(hidden) <= PAIRS_UP_TO:
            chosen += list(combinations(hidden, 2))
        groups += [(name, list(g)) for g in chosen]
    return groups


def _integral(comp: Component, system: YearSystem, members: list[int]) -> bool:
    inverse = {i: c for c, i in comp.local.items()}
    return all(system.integral[inverse[c]] and float(v).is_integer()
               for m in members for c, v in comp.expr[m][0].items())


def _judge(comp: Component, p: int, system: YearSystem, threshold: float, zero_publishable: bool,
           witnesses: bool) -> tuple[str | None, float, float] | None:
    """(finding or None, low, high) of one protected figure; None if nothing is feasible.

    With witnesses, each question is whether some table puts the figure somewhere (at
    the threshold or above; a unit away from the values seen), asked of the relaxation
    and in whole numbers where the linear answer straddles the edge (`reaches`, `below`);
    without, the exact minimum and maximum in whole numbers (the tests' reference)."""
    expr = comp.expr[p]
    if not witnesses:
        integral = _integral(comp, system, [p])
        high, low = comp.maximum(expr, integral), comp.minimum(expr, integral)
        if high is None or low is None:
            return None
        high, low = high[1], low[1]  # proven bounds
        if high < 1 - EPS and zero_publishable:
            return None, 0.0, max(high, 0.0)
        if high - low < 1 - EPS:
            return "pinned", low, high
        return ("below_threshold" if high < threshold - EPS else None), low, high
    if comp.cleared(p):
        return (None, *comp.seen(p))
    if not comp.feasible_with(expr, -np.inf, np.inf):
        return None
    k = comp.slot[p]
    margin = 0.0 if comp.relaxed else (np.inf if comp.diophantine else 1.0)
    if not (comp.int_high[k] >= threshold - EPS or comp.high[k] >= threshold + margin - EPS) and \
            not comp.reaches(expr, threshold):
        if zero_publishable and not comp.reaches(expr, 1.0):
            return None, 0.0, 0.0  # proven 0: no finding
        return _pinned_or(comp, p, expr, "below_threshold")
    if comp.int_high[k] - comp.int_low[k] >= 1 - EPS or comp.high[k] - comp.low[k] >= 1 + margin - EPS:
        return (None, *comp.seen(p))
    return _pinned_or(comp, p, expr, None)


def _pinned_or(comp: Component, p: int, expr, otherwise: str | None) -> tuple[str | None, float, float]:
    """`pinned` if no table puts the figure a unit away from a value seen, else `otherwise`."""
    k = comp.slot[p]
    margin = 0.0 if comp.relaxed else (np.inf if comp.diophantine else 1.0)
    if comp.int_high[k] - comp.int_low[k] >= 1 - EPS or comp.high[k] - comp.low[k] >= 1 + margin - EPS:
        return (otherwise, *comp.seen(p))
    value = comp.int_high[k] if math.isfinite(comp.int_high[k]) else comp.high[k]
    if comp.below(expr, value - 1) or comp.reaches(expr, value + 1):
        return (otherwise, *comp.seen(p))
    return ("pinned", *comp.seen(p))


def _judge_pin(year: int, system: YearSystem, comp: Component, q: int, result: AuditResult) -> None:
    """A masked rate a reader can recompute within its rounding (one unit of its last
    decimal) is a finding; one that exists in no table is not (the reader learns only
    that it does not exist)."""
    result.cells_checked += 1
    low, high = comp.seen_rate[q]  # over tables in whole numbers (in real numbers for the quick reader)
    if high - low > comp.rate_unit + EPS:
        return
    if comp.rate_apart(q) is False:
        result.findings.append(Finding(year, "pinned", (system.pins[q].cell,), None))
