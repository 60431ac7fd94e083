"""The secondary suppression's mixed-integer programme for one sub-problem (one year,
one zone tree): its cells and their states, the relations a reader adds up, the rate links
and the policy's inequalities, the cost of masking each cell, solved by HiGHS through
scipy.optimize.milp; and the cuts an audit finding adds ("mask at least one more of these").

What does not belong here: the rounds of solve, audit and cut, and the primary rules
(`suppression`); what a reader can prove (`audit`, `reader`), which never share code
with this model.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from pipeline.disclosure.policy import Policy, count_pairs, linked_counts
from pipeline.errors import PipelineError
from pipeline.indicators import IndicatorSet
from pipeline.tables import PUBLISHED_TABLE, primary_key

FREE, PRIMARY, SECRET, UNAVAILABLE = "free", "primary", "secret_at_source", "not_available"
PROTECTED = (FREE, PRIMARY, SECRET)  # cells whose masking must hold (not those merely missing)
KEYS = primary_key(PUBLISHED_TABLE)  # a cell: config/tables.yaml
# The cost of masking again a cell the last release masked, against masking a new one: its
# pattern is kept where it still protects, since a new mask beside an old one is what a
# reader of both releases subtracts.
REMASK_COST = 0.01


class MaskingError(PipelineError, RuntimeError):
    pass


class Hierarchy:
    """The zone tree of the referential: level, children and top-level zone of each zone."""

    def __init__(self, zones: pd.DataFrame) -> None:
        self.level_of = dict(zip(zones["zone_code"], zones["level"]))
        self.parent_of: dict[str, str] = {}
        self.children: dict[str, list[str]] = defaultdict(list)  # parents in the referential's order
        for code, parent in zip(zones["zone_code"], zones["parent_code"]):
            if isinstance(parent, str):
                self.parent_of[code] = parent
                self.children[parent].append(code)
        self._root: dict[str, str] = {}
        self.parents_by_root: dict[str, list[str]] = defaultdict(list)
        for parent in self.children:
            self.parents_by_root[self.root_of(parent)].append(parent)

    def root_of(self, code: str) -> str:
        """The top-level zone above `code` (itself at the top, or outside the referential)."""
        if code in self._root:
            return self._root[code]
        chain, seen = [code], {code}
        while chain[-1] in self.parent_of and self.parent_of[chain[-1]] not in seen:
            chain.append(self.parent_of[chain[-1]])
            seen.add(chain[-1])
        for c in chain:
            self._root[c] = chain[-1]
        return chain[-1]


@dataclass
class YearProblem:
    """Cells of one sub-problem (one year, one top-level zone tree), the relations among
    them, and the cuts added by the audit."""

    cells: pd.DataFrame  # rows of the sub-problem, positional index 0..n-1, with `state`
    relations: list[tuple[int, list[int]]]  # (parent position, children positions), count indicators
    ratio_links: list[tuple[int, int, int]]  # (rate, numerator, denominator) positions
    position: dict[tuple[str, str, str], int]
    # (parent, children) positions of a rate: their hidden terms add up like counts
    rate_relations: list[tuple[int, list[int]]] = field(default_factory=list)
    count_pairs: list[tuple[str, str]] = field(default_factory=list)  # the policy's inequalities between counts
    # rates whose denominator is 0: (rate position, the denominator's count position or -1)
    zero_rates: tuple[np.ndarray, np.ndarray] | None = None
    cuts: list[list[int]] = field(default_factory=list)
    floor: np.ndarray | None = None  # floor_of, computed once
    programme: tuple | None = None  # _programme, computed once
    base_entries: tuple | None = None  # its rows' entries as arrays (`_entries`), computed once
    # per cell, its indicator group (`ReaderModel.indicator_groups`): no constraint ties two groups
    groups: np.ndarray | None = None
    # per cell, from the earlier releases (`History.before`): the reader knows it already (masking it
    # hides nothing: it is published again, or masked by a rule but protected by nothing), and it
    # was masked in the last release that holds it (masking it again is preferred: it adds nothing)
    known_before: np.ndarray | None = None
    masked_before: np.ndarray | None = None

    def __post_init__(self) -> None:
        zone_ids = pd.factorize(pd.MultiIndex.from_arrays([self.cells["level"], self.cells["zone_code"]]))[0]
        self._zone_ids = np.asarray(zone_ids)
        self._linked: dict[int, set[int]] | None = None

    def neighbours(self, pos: int, same_zone: bool = True) -> set[int]:
        """Cells sharing a relation or a link with `pos` (and its zone, for the inequalities:
        the cells of its indicator group there, since nothing ties the other groups to it)."""
        if self._linked is None:  # cell -> the cells of its relations and rate links, built once
            self._linked = defaultdict(set)
            families = [[parent, *kids] for parent, kids in self.relations + self.rate_relations]
            for members in families + [list(t) for t in self.ratio_links]:
                for m in members:
                    self._linked[m].update(members)
        out = set(self._linked.get(pos, ()))
        if same_zone:
            zone = self._zone_ids == self._zone_ids[pos]
            if self.groups is not None:
                zone &= self.groups == self.groups[pos]
            out.update(np.flatnonzero(zone).tolist())
        out.discard(pos)
        return out


def year_problem(cells: pd.DataFrame, tree: Hierarchy, root: str, indicators: IndicatorSet,
                  policy: Policy) -> YearProblem:
    cells = cells.reset_index(drop=True)
    position = {key: i for i, key in enumerate(zip(cells["level"], cells["zone_code"], cells["indicator"]))}
    relations, rate_relations = [], []
    for indicator in (i.id for i in indicators.indicators if i.kind == "ratio"):
        for parent in tree.parents_by_root.get(root, ()):
            p = position.get((tree.level_of.get(parent), parent, indicator))
            k = [position.get((tree.level_of.get(kid), kid, indicator)) for kid in tree.children[parent]]
            if p is not None and k and all(x is not None for x in k):
                rate_relations.append((p, k))
    for indicator in (i.id for i in indicators.indicators if i.kind == "count"):
        for parent in tree.parents_by_root.get(root, ()):
            kids = tree.children[parent]
            p = position.get((tree.level_of.get(parent), parent, indicator))
            k = [position.get((tree.level_of.get(kid), kid, indicator)) for kid in kids]
            if p is not None and k and all(x is not None for x in k):
                relations.append((p, k))
    links = []
    for rate_id, (num_id, den_id) in linked_counts(indicators).items():
        if num_id is None or den_id is None:
            continue
        for (level, zone, indicator), pos in position.items():
            if indicator == rate_id:
                num, den = position.get((level, zone, num_id)), position.get((level, zone, den_id))
                if num is not None and den is not None:
                    links.append((pos, num, den))
    return YearProblem(cells, relations, links, position, rate_relations, count_pairs(policy, indicators),
                        zero_rates(cells, indicators))


def zero_rates(cells: pd.DataFrame, indicators: IndicatorSet) -> tuple[np.ndarray, np.ndarray]:
    """The rates of `cells` whose denominator is 0, with the position of the count that
    publishes their denominator (-1: none does). Such a rate does not exist; shown `nd`
    beside a hidden denominator it would tell the reader the denominator is 0, so it is
    shown masked unless its denominator is published (`_published_frame`)."""
    den_count = {rate: den for rate, (_num, den) in linked_counts(indicators).items()}
    is_zero = (cells["status"].to_numpy() == "not_available") & (cells["denominator"].to_numpy() == 0)
    rates = np.flatnonzero(is_zero)
    if not len(rates):
        return rates, rates
    keys = list(zip(cells["level"], cells["zone_code"], cells["indicator"], cells["year"]))
    position = {key: i for i, key in enumerate(keys)}
    dens = np.array([position.get((keys[r][0], keys[r][1], den_count.get(keys[r][2]), keys[r][3]), -1)
                     for r in rates], dtype=int)
    return rates, dens


def floor_of(problem: YearProblem, policy: Policy) -> np.ndarray:
    """Per cell, the largest known value of a cell that the policy's inequalities put
    below it in the same zone: a reader knows a masked cell is at least that much, so
    masking it hides only the value above that floor."""
    if problem.floor is not None:
        return problem.floor
    cells = problem.cells
    floor = np.zeros(len(cells))
    state = cells["state"].to_numpy()
    value = cells["value"].to_numpy()
    levels, zones, indicators = cells["level"].to_numpy(), cells["zone_code"].to_numpy(), cells["indicator"].to_numpy()
    for small, large in problem.count_pairs:
        for pos in np.flatnonzero(indicators == large):
            other = problem.position.get((levels[pos], zones[pos], small))
            if other is not None and state[other] in (FREE, PRIMARY):
                floor[pos] = max(floor[pos], float(value[other]))
    problem.floor = floor
    return floor


def inequality_pairs(problem: YearProblem, policy: Policy) -> list[tuple[int, int]]:
    """(smaller, larger) positions of the cells the policy's inequalities relate in one zone."""
    cells = problem.cells
    levels, zones, indicators = cells["level"].to_numpy(), cells["zone_code"].to_numpy(), cells["indicator"].to_numpy()
    pairs = []
    for small, large in problem.count_pairs:
        for pos in np.flatnonzero(indicators == small):
            other = problem.position.get((levels[pos], zones[pos], large))
            if other is not None:
                pairs.append((int(pos), other))
    return pairs


def solve(problem: YearProblem, policy: Policy) -> np.ndarray:
    """Binary mask of the year's cells (1 = not published) at least cost."""
    if problem.programme is None:
        problem.programme = _programme(problem, policy)
        problem.base_entries = _entries(problem.programme[2])
    cost, lower, _base = problem.programme
    upper = np.ones(len(cost)) if problem.known_before is None else \
        np.where((problem.cells["state"].to_numpy() == FREE) & problem.known_before, 0.0, 1.0)
    cuts = [list(dict.fromkeys(cut)) for cut in problem.cuts]  # each cut: sum over its cells >= 1
    result = _milp(cost, lower, upper, _satisfiable(problem.base_entries, lower, upper), cuts)
    if (result.status != 0 or result.x is None) and problem.known_before is not None and problem.known_before.any():
        # The base rows are the programme's own foresight (a masked cell needs company, hidden
        # mass under a known total); beside figures published before, several of them and the
        # audit's cuts can ask together what no mask gives (a cell the audit needs masked whose
        # total and siblings an earlier release published). The rows that count on a known cell
        # then give way to the cuts: the audit, which judges every round, decides.
        fresh = _satisfiable(problem.base_entries, lower, upper, apart=problem.known_before)
        result = _milp(cost, lower, upper, fresh, cuts)
    if result.status != 0 or result.x is None:
        raise MaskingError(f"the suppression programme has no solution ({result.message})")
    return np.round(result.x).astype(int)


def _milp(cost: np.ndarray, lower: np.ndarray, upper: np.ndarray, entries, cuts: list[list[int]]):
    """The whole-number programme of the base rows' `entries` (row, column, coefficient, right-hand
    sides) and the cuts."""
    n = len(cost)
    rows, cols, data, rhs = entries
    constraints = []
    if len(rhs) or cuts:
        # the base rows' entries as arrays, made once: the cuts are the only rows a round adds
        # (building every row's entries in Python each round cost more than HiGHS on a small table)
        sizes = np.array([len(cut) for cut in cuts], dtype=np.int64)
        rows = np.concatenate([rows, np.repeat(np.arange(len(rhs), len(rhs) + len(cuts)), sizes)])
        cols = np.concatenate([cols, np.array([c for cut in cuts for c in cut], dtype=np.int64)])
        data = np.concatenate([data, np.ones(int(sizes.sum()))])
        matrix = coo_matrix((data, (rows, cols)), shape=(len(rhs) + len(cuts), n)).tocsr()
        constraints = [LinearConstraint(matrix, np.concatenate([rhs, np.ones(len(cuts))]), np.inf)]
    return milp(c=cost, integrality=np.ones(n), bounds=Bounds(lower, upper), constraints=constraints,
                options={"disp": False, "mip_rel_gap": 0.0})


def _satisfiable(entries, lower: np.ndarray, upper: np.ndarray, apart: np.ndarray | None = None):
    """The base rows that some mask within the bounds satisfies (and, with `apart`, that hold
    none of those cells), renumbered. A row no mask can satisfy asks a protection only cells an
    earlier release published could give (a figure that a stricter threshold makes primary,
    beside totals and siblings all published before): nothing can give it, and the audit judges
    what the reader then knows (a finding the earlier releases alone give is theirs)."""
    rows, cols, data, rhs = entries
    best = np.bincount(rows, weights=np.maximum(data * lower[cols], data * upper[cols]), minlength=len(rhs))
    keep = best >= rhs - 1e-9
    if apart is not None:
        keep &= np.bincount(rows, weights=apart[cols].astype(float), minlength=len(rhs)) == 0
    if keep.all():
        return entries
    renumber = np.cumsum(keep) - 1
    inside = keep[rows]
    return renumber[rows[inside]], cols[inside], data[inside], rhs[keep]


def _entries(rows: list[tuple[dict[int, float], float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, coefficient) of every entry of `rows`, in their order, and the right-hand sides."""
    sizes = np.array([len(coefs) for coefs, _rhs in rows], dtype=np.int64)
    return (np.repeat(np.arange(len(rows)), sizes),
            np.array([c for coefs, _rhs in rows for c in coefs], dtype=np.int64),
            np.array([v for coefs, _rhs in rows for v in coefs.values()], dtype=float),
            np.array([rhs for _coefs, rhs in rows], dtype=float))


def _programme(problem: YearProblem, policy: Policy) -> tuple[np.ndarray, np.ndarray, list]:
    """Cost, lower bounds and the constraints (coefficients, right-hand side: sum >= rhs)
    of the sub-problem before any cut: the same in every round."""
    cells = problem.cells
    state = cells["state"].to_numpy()
    value = cells["value"].fillna(0).to_numpy(dtype=float)
    known = np.isin(state, (FREE, PRIMARY))
    lower = np.where(state == FREE, 0.0, 1.0)
    cost = np.array([policy.level_cost(lv) for lv in cells["level"]]) * (1 + np.abs(value))
    cost = np.where(state == FREE, cost, 0.0)
    if problem.masked_before is not None:  # the last release's pattern first: masking it again tells nothing new
        cost = np.where(problem.masked_before, cost * REMASK_COST, cost)
    threshold = float(policy.threshold)
    capacity = np.maximum(value - floor_of(problem, policy), 0.0)
    # a figure an earlier release published is known: nothing can protect it, nor need to
    guarded = np.isin(state, PROTECTED)
    before = np.zeros(len(state), dtype=bool) if problem.known_before is None else problem.known_before
    guarded &= ~before

    rows: list[tuple[dict[int, float], float]] = []  # sum(coef * x) >= rhs
    for parent, kids in problem.relations:
        members = [parent, *kids]
        for i in members:
            # masked, it must not be the only unknown of the relation (unless every other cell of it
            # is known from an earlier release: nothing can hide it then, and the audit judges it)
            if guarded[i] and not before[[j for j in members if j != i]].all():
                rows.append(({**{j: 1.0 for j in members if j != i}, i: -1.0}, 0.0))
        if known[parent]:
            hidden_mass = max(value[parent] - sum(value[k] for k in kids if known[k]), 0.0)
            for i in kids:
                if guarded[i]:
                    coefs: dict[int, float] = defaultdict(float)
                    for k in kids:
                        if known[k]:
                            coefs[k] += capacity[k]
                    coefs[parent] += threshold
                    coefs[i] -= threshold
                    rows.append((dict(coefs), -hidden_mass))
    for rate, num, den in problem.ratio_links:
        for term, other in ((num, den), (den, num)):
            if not before[rate]:
                rows.append(({rate: 1.0, term: -1.0}, 0.0))  # a term masked masks its rate
            elif guarded[term] and not before[other]:  # the rate is known: the other term hides it
                rows.append(({other: 1.0, term: -1.0}, 0.0))
        if guarded[rate]:
            rows.append(({num: 1.0, den: 1.0, rate: -1.0}, 0.0))
    return cost, lower, rows


def cut(problem: YearProblem, finding, x: np.ndarray, state: np.ndarray, usable: np.ndarray,
         facts: dict, sharp: bool) -> list[int]:
    """The cells of which at least one more must be masked to answer `finding`.

    Plain cut: every publishable cell around the finding (its relations, its rate
    links, its zone). Sharp cut, once the plain ones stall: only those that can help
    (`usable` then leaves out the public indicators' cells),
    - a cell bounded by a published cell under the threshold that an inequality puts
      above it (children under 3 = 0 over their CMG figure) is pinned by it whatever
      else is masked: the cut is that cell itself;
    - a cell proven small needs more hidden mass: a cell of the same figure with
      nothing above its floor (a 0) adds none, masking its total does.
    Plain cuts can cycle through many useless cells of a large zone, each solve
    swapping one for another; sharp cuts cannot.
    """
    around: set[int] = set()
    for level, zone, indicator in finding.cells:
        around |= problem.neighbours(problem.position[(level, zone, indicator)])
    candidates = sorted(p for p in around if usable[p])
    if sharp:
        own = sorted({indicator for _level, _zone, indicator in finding.cells})
        found = {problem.position[c] for c in finding.cells}
        bounding = sorted(large for small, large in facts["pairs"]
                          if small in found and usable[large] and facts["value"][large] < facts["threshold"])
        if bounding:
            return bounding
        if finding.problem == "below_threshold":
            massless = (facts["capacity"] <= 0) & np.isin(facts["indicator"], own)
            parents = {p for p, kids in problem.relations if found & set(kids)}
            candidates = [c for c in candidates if c in parents or not massless[c]] or candidates
    return candidates
