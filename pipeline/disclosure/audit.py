"""The independent audit of a published indicator table (convention, article 4).

What belongs here: rebuilding, from the published table, the zones and the policy
only, every constraint a reader knows (additivity of counts from communes to RPE to
the EPCI, rates published beside their numerator or denominator, the subset
inequalities of the policy, non-negativity), and deciding with linear programming
(HiGHS, through highspy) what a reader can derive about every masked cell and every
sum of masked cells inside one relation. A masked cell whose interval pins it
(narrower than one unit), or any interval whose upper end lies between 0 and the
threshold (the reader can prove "fewer than 5"), is a finding; any finding blocks
publication. A cell or sum proven to be 0 is not a finding when the policy lets a zero
be published (`zero_publishable`): it concerns no allocataire, and a reader learns no
more than a published 0 would tell (typically a count under a published 0, such as
the childminders over 55 of a commune with none).

How it decides: a complete table consistent with everything published (a feasible
point of the reader's constraints, which every LP solve gives) proves the reader cannot
exclude the values it holds. Most cells are cleared by a few such tables per connected
component (`_Solver.witness`): one whose value reaches the threshold and another a unit
apart. Only the cells they do not clear get the exact minimum and maximum, and only
those can be findings, so the findings are those of an exact interval per cell, at a
fraction of the solves. The intervals reported (`AuditResult.intervals`, the masking
log's low and high) are therefore ranges a reader cannot narrow: exact where a cell
needed its own solves, else the values the tables found.

What does not: choosing what to mask (`suppression`), which never shares code with
this module, so a mistake in the solver's model cannot hide here. The audit never
sees a masked value.

Note on sums: counts are non-negative, so the largest value a sum of masked cells can
take is at least the largest value of each of its cells; a sum that a reader can prove
small therefore always comes with a cell that is itself found. The sums are checked
anyway, as the policy states the criterion for them: a sum with a cell already seen at
the threshold or above is cleared by that cell; the others get their exact maximum.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import highspy
import numpy as np
import pandas as pd

from pipeline.disclosure.policy import Policy, linked_counts
from pipeline.frames import as_text
from pipeline.indicators import IndicatorSet

EPS = 1e-6
ALL_SUBSETS_UP_TO = 6  # relations with at most this many masked cells: every subset is checked
PAIRS_UP_TO = 16  # beyond that, the whole masked set and single cells only

CellKey = tuple[str, str, str]  # level, zone_code, indicator


@dataclass(frozen=True)
class Finding:
    year: int
    problem: str  # pinned | below_threshold | inconsistent
    cells: tuple[CellKey, ...]
    relation: str | None = None

    def describe(self) -> str:
        """Codes only: never the interval, which would say what the masked value is."""
        cells = " + ".join(f"{ind} {level} {zone}" for level, zone, ind in self.cells)
        what = {
            "pinned": "can be recomputed exactly",
            "below_threshold": f"can be proven below the threshold",
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
    linear_programmes: int = 0

    @property
    def passed(self) -> bool:
        return not self.findings


@dataclass
class _Row:
    coefs: dict[int, float]
    low: float
    high: float


class _YearModel:
    """The unknowns of one year and the linear constraints a reader knows about them."""

    def __init__(self) -> None:
        self.index: dict[CellKey, int] = {}
        self.rows: list[_Row] = []

    def var(self, key: CellKey) -> int:
        if key not in self.index:
            self.index[key] = len(self.index)
        return self.index[key]

    def add(self, terms: list[tuple[float, CellKey | float]], low: float, high: float, unknown: set[CellKey]) -> None:
        """Add low <= sum(coef * term) <= high; published terms are moved to the bounds."""
        coefs: dict[int, float] = defaultdict(float)
        constant = 0.0
        for coef, term in terms:
            if isinstance(term, tuple) and term in unknown:
                coefs[self.var(term)] += coef
            else:
                constant += coef * float(term)
        if coefs:
            self.rows.append(_Row(dict(coefs), low - constant, high - constant))


def _components(n: int, rows: list[_Row]) -> list[tuple[list[int], list[_Row]]]:
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for row in rows:
        cols = list(row.coefs)
        for other in cols[1:]:
            parent[find(other)] = find(cols[0])
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        members[find(i)].append(i)
    by_root: dict[int, list[_Row]] = defaultdict(list)
    for row in rows:
        by_root[find(next(iter(row.coefs)))].append(row)
    return [(cols, by_root.get(root, [])) for root, cols in members.items()]


class _Solver:
    """One HiGHS model per connected component; only the objective changes between solves.

    Every optimal solve also gives a complete table consistent with everything published
    (its primal solution). `seen_low` and `seen_high` keep, per cell, the lowest and
    highest value one of those tables gave it: a reader cannot exclude either, so the
    interval a reader can derive contains [seen_low, seen_high]. A cell whose seen range
    already reaches the threshold and spans a unit cannot be a finding and needs no
    solve of its own (`cleared`); the others get the exact minimum and maximum.
    `witness` looks for such tables for many cells at once: maximising the sum of the
    cells capped at the threshold (a capped copy y <= x, 0 <= y <= threshold per cell,
    which leaves the cells' own constraints untouched), then minimising their sum.
    """

    def __init__(self, cols: list[int], rows: list[_Row], capped: list[int], cap: float) -> None:
        self.position = {c: i for i, c in enumerate(cols)}
        self.n = len(cols)
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        inf = highspy.kHighsInf
        self.highs.addVars(self.n, np.zeros(self.n), np.full(self.n, inf))
        self.copy_of = {c: self.n + k for k, c in enumerate(capped)}
        if capped:
            self.highs.addVars(len(capped), np.zeros(len(capped)), np.full(len(capped), float(cap)))
        # the reader's constraints, then y - x <= 0 for each capped copy, in one call
        lows, highs, starts, index, coefs = [], [], [], [], []
        for row in rows:
            lows.append(row.low), highs.append(row.high), starts.append(len(index))
            index += [self.position[c] for c in row.coefs]
            coefs += list(row.coefs.values())
        for c, y in self.copy_of.items():
            lows.append(-inf), highs.append(0.0), starts.append(len(index))
            index += [y, self.position[c]]
            coefs += [1.0, -1.0]
        if lows:
            self.highs.addRows(len(lows), np.array(lows, dtype=float), np.array(highs, dtype=float), len(index),
                               np.array(starts, dtype=np.int32), np.array(index, dtype=np.int32),
                               np.array(coefs, dtype=float))
        self.width = self.n + len(capped)
        self.seen_low = np.full(self.n, np.inf)
        self.seen_high = np.full(self.n, -np.inf)
        self.solves = 0

    def _run(self, columns: list[int], sense) -> highspy.HighsModelStatus:
        cost = np.zeros(self.width)
        cost[columns] = 1.0
        self.highs.changeColsCost(self.width, np.arange(self.width, dtype=np.int32), cost)
        self.highs.changeObjectiveSense(sense)
        self.highs.run()
        self.solves += 1
        status = self.highs.getModelStatus()
        if status == highspy.HighsModelStatus.kOptimal:
            point = np.asarray(self.highs.getSolution().col_value[: self.n])
            np.minimum(self.seen_low, point, out=self.seen_low)
            np.maximum(self.seen_high, point, out=self.seen_high)
        return status

    def seen(self, col: int) -> tuple[float, float]:
        i = self.position[col]
        return float(self.seen_low[i]), float(self.seen_high[i])

    def cleared(self, col: int, threshold: float) -> bool:
        low, high = self.seen(col)
        return high >= threshold - EPS and high - low >= 1 - EPS

    def witness(self, cols: list[int], threshold: float, rounds: int = 3) -> None:
        """Tables consistent with what is published that clear as many of `cols` as possible."""
        for _ in range(rounds):
            low = [c for c in cols if self.seen(c)[1] < threshold - EPS]
            if low:
                self._run([self.copy_of[c] for c in low], highspy.ObjSense.kMaximize)
            narrow = [c for c in cols if not self.cleared(c, threshold)]
            if not narrow:
                return
            self._run([self.position[c] for c in narrow], highspy.ObjSense.kMinimize)
            still = [c for c in narrow if not self.cleared(c, threshold)]
            if len(still) == len(narrow):
                return  # no progress: the exact solves decide the rest
            cols = still

    def witnessed(self, cols: list[int], threshold: float) -> tuple[float, float] | None:
        """What the tables seen so far prove, when that already rules out a finding: for
        one cell its seen range; for a sum, the largest seen value of one of its cells
        bounds the sum's maximum from below (counts are non-negative)."""
        if len(cols) == 1:
            return self.seen(cols[0]) if self.cleared(cols[0], threshold) else None
        high = max(self.seen(c)[1] for c in cols)
        return (0.0, high) if high >= threshold - EPS else None

    def bound(self, cols: list[int], sense) -> float | None:
        """The minimum or maximum of the sum of `cols`: inf when a maximum is unbounded,
        None when the constraints are infeasible."""
        status = self._run([self.position[c] for c in cols], sense)
        if status == highspy.HighsModelStatus.kOptimal:
            return self.highs.getInfo().objective_function_value
        if status in (highspy.HighsModelStatus.kUnbounded, highspy.HighsModelStatus.kUnboundedOrInfeasible) and \
                sense == highspy.ObjSense.kMaximize:
            return np.inf
        return None

    def bounds(self, cols: list[int]) -> tuple[float, float] | None:
        """(min, max) of the sum of `cols`; None when the constraints are infeasible."""
        low = self.bound(cols, highspy.ObjSense.kMinimize)
        high = None if low is None else self.bound(cols, highspy.ObjSense.kMaximize)
        return None if high is None else (low, high)

    def decisive(self, cols: list[int], threshold: float, zero_publishable: bool) -> tuple[float, float] | None:
        """Bounds of the sum of `cols` that decide the verdict, with the fewest solves:
        the maximum first (a sum's verdict, or a cell proven 0, needs nothing else), the
        minimum only when no table seen so far holds the cell a unit below its maximum.
        The low end returned is then the lowest value seen (the reader cannot exclude it).
        None when the constraints are infeasible."""
        high = self.bound(cols, highspy.ObjSense.kMaximize)
        if high is None or (high == np.inf and not np.isfinite(self.seen_low).all()):
            return self.bounds(cols)  # unbounded or infeasible: the minimum tells which
        low = self.seen(cols[0])[0] if len(cols) == 1 else 0.0
        if len(cols) > 1 or (high < 1 - EPS and zero_publishable) or high - low >= 1 - EPS:
            return min(low, high), high
        low = self.bound(cols, highspy.ObjSense.kMinimize)
        return None if low is None else (low, high)


# From this many cells, `audit_published` audits the zone trees in worker processes.
PARALLEL_MIN_CELLS = 200_000


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


def audit_published(
    published: pd.DataFrame, zones: pd.DataFrame, indicators: IndicatorSet, policy: Policy, sums: bool = True,
    witnesses: bool = True, workers: int | None = None,
) -> AuditResult:
    """Audit `published` (level, zone_code, indicator, year, value, status): see
    `audit_table`. The zone trees (an EPCI and what lies under it) share no constraint,
    so from `PARALLEL_MIN_CELLS` cells (or `workers` > 1) they are audited in that many
    worker processes (default: one per core), each a share of the trees; the verdict
    is the same, the findings listed year by year."""
    published = as_text(published)  # text read compactly: plain text cells again
    if workers is None:
        workers = (os.cpu_count() or 1) if len(published) >= PARALLEL_MIN_CELLS else 1
    root_of = _roots(zones) if workers > 1 else {}
    roots = published["zone_code"].map(root_of).fillna(published["zone_code"]) if workers > 1 else None
    if workers <= 1 or roots.nunique() < 2:
        return audit_table(published, zones, indicators, policy, sums, witnesses)
    # shares of whole trees, the largest first onto the least loaded share
    sizes = roots.value_counts()
    shares: list[list[str]] = [[] for _ in range(min(workers * 4, len(sizes)))]
    load = np.zeros(len(shares))
    for root, size in sizes.items():
        k = int(np.argmin(load))
        shares[k].append(root)
        load[k] += size
    zone_roots = zones["zone_code"].map(root_of).fillna(zones["zone_code"])
    tasks = [(published[roots.isin(share).to_numpy()], zones[zone_roots.isin(share).to_numpy()]) for share in shares]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        parts = list(pool.map(_audit_share, tasks, [(indicators, policy, sums, witnesses)] * len(tasks)))
    intervals = [p.intervals for p in parts if len(p.intervals)]
    return AuditResult(
        findings=sorted((f for p in parts for f in p.findings), key=lambda f: f.year),
        intervals=pd.concat(intervals, ignore_index=True) if intervals else parts[0].intervals,
        cells_checked=sum(p.cells_checked for p in parts),
        groups_checked=sum(p.groups_checked for p in parts),
        linear_programmes=sum(p.linear_programmes for p in parts),
    )


def _audit_share(task: tuple[pd.DataFrame, pd.DataFrame], settings: tuple) -> AuditResult:
    published, zones = task
    indicators, policy, sums, witnesses = settings
    return audit_table(published, zones, indicators, policy, sums, witnesses)


def audit_table(
    published: pd.DataFrame, zones: pd.DataFrame, indicators: IndicatorSet, policy: Policy, sums: bool = True,
    witnesses: bool = True,
) -> AuditResult:
    """Audit `published` (level, zone_code, indicator, year, value, status).

    `zones` gives the hierarchy (level, zone_code, parent_code): each zone equals the sum
    of the zones whose parent_code is its code, for every count indicator. `sums=False`
    checks single cells only (enough to steer the solver; see the module's note).
    `witnesses=False` solves the exact interval of every cell and sum (same findings,
    many more solves: the reference the tests compare the witnesses against).
    """
    result = AuditResult()
    kinds = {i.id: i.kind for i in indicators.indicators}
    multipliers = {i.id: float(i.multiplier or 100) for i in indicators.indicators if i.kind == "ratio"}
    links = linked_counts(indicators)
    children_of: dict[str, list[str]] = defaultdict(list)
    level_of = dict(zip(zones["zone_code"], zones["level"]))
    for code, parent in zip(zones["zone_code"], zones["parent_code"]):
        if isinstance(parent, str):
            children_of[parent].append(code)
    rate_slack = 0.5 * 10 ** (-policy.rate_decimals)
    intervals = []

    for year, table in published.groupby("year"):
        year = int(year)
        keys = list(zip(table["level"].tolist(), table["zone_code"].tolist(), table["indicator"].tolist()))
        statuses = table["status"].tolist()
        status = dict(zip(keys, statuses))
        value = {k: v for k, s, v in zip(keys, statuses, table["value"].tolist()) if s == "published"}
        unknown = {k for k, s in status.items() if s != "published" and kinds.get(k[2]) == "count"}
        masked = {k for k, s in status.items() if s == "masked"}
        model = _YearModel()
        for key in sorted(unknown):
            model.var(key)

        def term(key: CellKey) -> CellKey | float:
            return key if key in unknown else value[key]

        relations: list[tuple[str, CellKey, list[CellKey]]] = []
        count_ids = sorted({k[2] for k in status if kinds.get(k[2]) == "count"})
        for indicator in count_ids:
            for parent, kids in children_of.items():
                parent_key = (level_of[parent], parent, indicator)
                kid_keys = [(level_of[k], k, indicator) for k in kids]
                if parent_key not in status or not all(k in status for k in kid_keys):
                    continue
                relations.append((f"{indicator} {parent}", parent_key, kid_keys))
                model.add([(1.0, term(k)) for k in kid_keys] + [(-1.0, term(parent_key))], 0.0, 0.0, unknown)

        for key, rate in value.items():
            level, zone, indicator = key
            if kinds.get(indicator) != "ratio" or links.get(indicator, (None, None)) == (None, None):
                continue
            num_id, den_id = links[indicator]
            num, den = (level, zone, num_id), (level, zone, den_id)
            if num not in status or den not in status:
                continue
            m = multipliers[indicator]
            # num / den * m lies within the rounding of the published rate
            model.add([(1.0, term(num)), (-(rate + rate_slack) / m, term(den))], -np.inf, 0.0, unknown)
            model.add([(1.0, term(num)), (-(rate - rate_slack) / m, term(den))], 0.0, np.inf, unknown)

        for small, large in policy.inequalities:
            for level, zone, indicator in list(status):
                if indicator != small or (level, zone, large) not in status:
                    continue
                model.add([(1.0, term((level, zone, small))), (-1.0, term((level, zone, large)))], -np.inf, 0.0, unknown)

        threshold = float(policy.threshold)
        checked = {model.index[k] for k in masked & unknown}
        solvers: dict[int, _Solver] = {}
        for cols, rows in _components(len(model.index), model.rows):
            if not rows:
                continue
            solver = _Solver(cols, rows, [c for c in cols if c in checked], threshold)
            if witnesses:
                solver.witness([c for c in cols if c in checked], threshold)
            for c in cols:
                solvers[c] = solver

        def solver_of(keys: list[CellKey]) -> tuple[_Solver | None, list[int]]:
            """The model holding `keys`, None if they are unconstrained or tied by nothing."""
            cols = [model.index[k] for k in keys]
            solver = solvers.get(cols[0])
            tied = solver is not None and all(solvers.get(c) is solver for c in cols)
            return (solver if tied else None), cols

        def known_exactly(key: CellKey) -> bool:
            """Published, or pinned by what is: a seen range of a unit or more rules it out."""
            if key not in unknown:
                return True
            solver, (col,) = solver_of([key])
            if solver is None:
                return False
            low, high = solver.seen(col)
            if witnesses and np.isfinite(low) and high - low >= EPS:
                return False
            found = solver.bounds([col])
            return found is not None and found[1] - found[0] < EPS

        def judge(keys: list[CellKey], relation: str | None) -> tuple[float, float] | None:
            solver, cols = solver_of(keys)
            if solver is None:
                found = (0.0, np.inf)
            elif witnesses:
                found = solver.witnessed(cols, threshold) or solver.decisive(cols, threshold, policy.zero_publishable)
            else:
                found = solver.bounds(cols)
            if found is None:
                result.findings.append(Finding(year, "inconsistent", tuple(keys), relation))
                return None
            low, high = found
            # Counts are whole: below 1, the reader knows the value is 0, which the
            # policy may allow to publish (a zero concerns no allocataire).
            if high < 1 - EPS and policy.zero_publishable:
                return found
            if len(keys) == 1 and high - low < 1 - EPS:
                result.findings.append(Finding(year, "pinned", tuple(keys), relation))
            elif EPS < high < policy.threshold - EPS:
                result.findings.append(Finding(year, "below_threshold", tuple(keys), relation))
            return found

        for key in sorted(masked & unknown):
            result.cells_checked += 1
            found = judge([key], None)
            if found is not None:
                intervals.append((*key, year, found[0], found[1]))

        # A masked rate is recomputed when its numerator and denominator are both known.
        for key in sorted(k for k in masked if kinds.get(k[2]) == "ratio"):
            num_id, den_id = links.get(key[2], (None, None))
            if num_id is None or den_id is None:
                continue  # its terms are never published: nothing to recompute it from
            terms = [(key[0], key[1], num_id), (key[0], key[1], den_id)]
            if value.get(terms[1]) == 0:
                continue  # a published zero denominator: the rate does not exist
            if all(t in status for t in terms):
                result.cells_checked += 1
                if all(known_exactly(t) for t in terms):
                    result.findings.append(Finding(year, "pinned", (key,), None))

        for name, _parent, kids in relations if sums else []:
            hidden = [k for k in kids if k in masked]
            if len(hidden) < 2:
                continue
            groups: list[tuple[CellKey, ...]] = [tuple(hidden)]
            if len(hidden) <= ALL_SUBSETS_UP_TO:
                groups += [g for size in range(2, len(hidden)) for g in itertools.combinations(hidden, size)]
            elif len(hidden) <= PAIRS_UP_TO:
                groups += list(itertools.combinations(hidden, 2))
            for group in groups:
                result.groups_checked += 1
                judge(list(group), name)

        result.linear_programmes += sum(s.solves for s in {id(s): s for s in solvers.values()}.values())

    names = ["level", "zone_code", "indicator", "year", "low", "high"]
    result.intervals = pd.DataFrame(dict(zip(names, map(list, zip(*intervals))))) if intervals else \
        pd.DataFrame(columns=names)
    return result
