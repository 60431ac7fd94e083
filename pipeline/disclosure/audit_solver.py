"""The reader's questions solved with HiGHS (highspy): one model per connected component.

What belongs here: a model of the unknowns some fact ties together, in real numbers or in
whole numbers, and the questions the audit asks of it (is there a table with this figure
at the threshold or above, a unit away from a value seen, this masked rate a rounding unit
apart), with the tables each solve gives recorded. What does not: which figures to ask
about and what the answers mean (`audit`), what the reader knows (`reader`).
"""

from __future__ import annotations

import math
import os
import sys
from collections import defaultdict

import highspy
import numpy as np
from scipy.sparse import coo_matrix

from pipeline.disclosure.reader import DISJUNCTION_M, UPPER, YearSystem, allowed_terms

EPS = 1e-6
TIME_LIMIT = 60.0  # seconds per solve; a solve stopped there proves nothing in the figure's favour
WITNESS_GAP = 0.05  # a witness table needs no optimum: the solve stops within this relative gap,
WITNESS_TIME_LIMIT = 2.0  # or after this many seconds with the best table found


def set_time_limit(highs: highspy.Highs, seconds: float, whole: bool) -> None:
    """The next solve's time limit, `seconds` from its start. HiGHS (1.16) checks a linear
    programme's limit against the model's run clock, which adds up over every run of the
    model, and a mixed-integer programme's against its own start: a component kept for many
    questions answered "time limit" to every linear one, at once, after a minute of them
    (fail-safe findings, then "published figures contradict each other" with a history of
    four releases). tests/test_audit_solver.py pins both behaviours."""
    highs.setOptionValue("time_limit", seconds + (0.0 if whole else highs.getRunTime()))


def _quiet_highs() -> highspy.Highs:
    """A HiGHS solver that prints nothing. highspy prints its banner on standard output
    when a process creates its first solver, before any option can silence it: that first
    creation runs with file descriptor 1 pointed at /dev/null (`make run` stays readable)."""
    global _banner_done
    if _banner_done:
        highs = highspy.Highs()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                highs = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        _banner_done = True
    highs.setOptionValue("output_flag", False)
    return highs


_banner_done = False


def components(n: int, rows: list[tuple[dict[int, float], float, float]],
                disjunctions: list[tuple[dict[int, float], float]]) -> list[int]:
    """The connected component of each unknown (the unknowns a fact ties together)."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for coefs, *_ in [*rows, *disjunctions]:
        cols = list(coefs)
        for other in cols[1:]:
            parent[find(other)] = find(cols[0])
    return [find(i) for i in range(n)]


class Component:
    """One HiGHS model of the unknowns a fact ties together; only the objective changes.

    Columns: the unknowns (0..n-1, whole numbers unless fractional), one binary per
    disjunction, one capped copy y <= min(expression, threshold) per protected figure.
    `low`/`high` (by `slot`) keep each protected figure's lowest and highest value over the
    tables the solves gave, `seen_rate` each masked rate's, `seen_sum` each sum's highest.
    """

    def __init__(self, cols: list[int], system: YearSystem, rows: list, disjunctions: list,
                 protected: list[int], pins: list[int], threshold: float, rate_unit: float,
                 relaxed: bool = False) -> None:
        self.rate_unit = rate_unit
        self.relaxed = relaxed  # the linear relaxation only: a quick reader, to steer the masking
        self.local = {c: i for i, c in enumerate(cols)}
        self.n = len(cols)
        self.threshold = threshold
        self.highs = _quiet_highs()
        self.highs.setOptionValue("time_limit", TIME_LIMIT)
        self.highs.setOptionValue("mip_rel_gap", 0.0)
        self.highs.addVars(self.n, np.zeros(self.n), _upper_bounds(self.n, [
            ({self.local[c]: v for c, v in coefs.items()}, low, high) for coefs, low, high in rows]))
        integral = [i for c, i in self.local.items() if system.integral[c]]
        width = self.n
        lows, highs, starts, index, values = [], [], [], [], []

        def row(coefs: dict[int, float], low: float, high: float) -> None:
            lows.append(low), highs.append(high), starts.append(len(index))
            index.extend(coefs), values.extend(coefs.values())

        for coefs, low, high in rows:
            row({self.local[c]: v for c, v in coefs.items()}, low, high)
        if disjunctions:  # a + c in {0} or [threshold, M]: a + c >= threshold b, a + c <= M b
            self.highs.addVars(len(disjunctions), np.zeros(len(disjunctions)), np.ones(len(disjunctions)))
            for k, (coefs, constant) in enumerate(disjunctions):
                b = width + k
                integral.append(b)
                local = {self.local[c]: v for c, v in coefs.items()}
                row({**local, b: -threshold}, -constant, np.inf)
                row({**local, b: -DISJUNCTION_M}, -np.inf, -constant)
            width += len(disjunctions)
        self.protected = protected
        self.expr = {p: ({self.local[c]: v for c, v in system.protected[p].coefs}, system.protected[p].constant)
                     for p in protected}
        self.copy_of: dict[int, int] = {}
        if protected:
            self.highs.addVars(len(protected), np.zeros(len(protected)), np.full(len(protected), threshold))
            for k, p in enumerate(protected):  # y - expression <= constant
                self.copy_of[p] = width + k
                coefs, constant = self.expr[p]
                row({width + k: 1.0, **{c: -v for c, v in coefs.items()}}, -np.inf, constant)
            width += len(protected)
        if lows:
            self.highs.addRows(len(lows), np.array(lows, dtype=float), np.array(highs, dtype=float), len(index),
                               np.array(starts, dtype=np.int32), np.array(index, dtype=np.int32),
                               np.array(values, dtype=float))
        self.integral_cols = np.array(integral, dtype=np.int32)  # whole numbers, asked for only where it matters
        self.whole = False
        # A row tying whole unknowns with fractional coefficients (a rate published beside
        # two hidden counts) makes a Diophantine system: there the relaxation can be far
        # from whole numbers, so every question is decided in whole numbers.
        whole_cols = {c for c in cols if system.integral[c]}  # global indices, as the rows' keys
        self.diophantine = not relaxed and any(
            len(whole_cols.intersection(coefs)) >= 2 and any(not float(v).is_integer() for v in coefs.values())
            for coefs, _low, _high in rows)
        self.width = width
        self.pins = {q: tuple(({self.local[c]: v for c, v in coefs}, constant) for coefs, constant in
                              (system.pins[q].numerator, system.pins[q].denominator)) + (system.pins[q].multiplier,)
                     for q in pins}
        # each protected figure's expression as a row of one matrix: a table's values in one product
        self.slot = {p: k for k, p in enumerate(protected)}
        self.constants = np.array([self.expr[p][1] for p in protected], dtype=float)
        # when every figure is one unknown times a coefficient (masked counts), a table's values
        # are taken by indexing: the sparse product's fixed cost was most of `_record`'s
        self.single = None
        if all(len(self.expr[p][0]) == 1 for p in protected):
            self.single = (np.array([next(iter(self.expr[p][0])) for p in protected], dtype=np.int64),
                           np.array([next(iter(self.expr[p][0].values())) for p in protected], dtype=float))
        else:
            entries = [(k, c, v) for k, p in enumerate(protected) for c, v in self.expr[p][0].items()]
            self.matrix = coo_matrix(([v for *_, v in entries], ([k for k, *_ in entries],
                                                                [c for _, c, _ in entries])),
                                     shape=(len(protected), self.n)).tocsr()
        self.all_cols = np.arange(width, dtype=np.int32)
        # over every table seen (`low`, `high`), and over the tables in whole numbers (`int_`)
        self.low = np.full(len(protected), np.inf)
        self.high = np.full(len(protected), -np.inf)
        self.int_low = np.full(len(protected), np.inf)
        self.int_high = np.full(len(protected), -np.inf)
        self.seen_rate = {q: [math.inf, -math.inf] for q in pins}
        self.sums: dict[int, np.ndarray] = {}  # sum key -> slots of its members
        self._sum_matrix = None
        self.solves = 0
        self.feasible: bool | None = None
        self.extra_rows = 0  # rows of a question (`_with_row`) currently in the model
        self.recording = True  # whether the tables solves give are kept as witnesses
        self.start: list[float] | None = None  # the last table found: where the next solve starts

    @staticmethod
    def _value(point: np.ndarray, expr: tuple[dict[int, float], float]) -> float:
        coefs, constant = expr
        return constant + sum(v * point[c] for c, v in coefs.items())

    def watch_sum(self, key: int, members: list[int]) -> None:
        self.sums[key] = np.array([self.slot[m] for m in members])
        self._sum_matrix = None

    def sum_seen(self, key: int) -> tuple[float, float]:
        """The highest value of a sum over every table seen, and over those in whole numbers."""
        if key not in self.sums or self._sum_matrix is None:
            return -math.inf, -math.inf
        r = self._sum_row[key]
        return float(self._sum_seen[r]), float(self._sum_int[r])

    def whole_numbers(self, on: bool) -> None:
        """Solve in whole numbers (a mixed-integer programme) or not (its linear relaxation)."""
        if on != self.whole and len(self.integral_cols):
            kind = highspy.HighsVarType.kInteger if on else highspy.HighsVarType.kContinuous
            self.highs.changeColsIntegrality(len(self.integral_cols), self.integral_cols,
                                             np.array([kind] * len(self.integral_cols)))
        self.whole = on

    def seen(self, p: int) -> tuple[float, float]:
        """A range of a protected figure the reader cannot narrow, for the masking log: over
        the tables in whole numbers seen, else over the others rounded inwards."""
        k = self.slot[p]
        if math.isfinite(self.int_high[k]):
            return float(self.int_low[k]), float(self.int_high[k])
        if not math.isfinite(self.high[k]):
            return math.nan, math.nan
        low, high = math.ceil(self.low[k] - EPS), math.floor(self.high[k] + EPS)
        return (float(low), float(high)) if low <= high else (float(high), float(high))

    def _run(self, objective: dict[int, float], sense, witness: bool = False) -> tuple[str, float, float]:
        """Optimise; ('optimal' | 'limit' | 'infeasible', best value found, proven bound).
        A `witness` solve needs no optimum, only good tables: it stops at a loose gap or
        a short time limit."""
        self.highs.setOptionValue("mip_rel_gap", WITNESS_GAP if witness else 0.0)
        self.highs.setOptionValue("mip_abs_gap", 1.0 if witness else 1e-6)
        set_time_limit(self.highs, WITNESS_TIME_LIMIT if witness else TIME_LIMIT, self.whole)
        cost = np.zeros(self.width)
        for c, v in objective.items():
            cost[c] += v
        self.highs.changeColsCost(self.width, self.all_cols, cost)
        self.highs.changeObjectiveSense(sense)
        if self.start is not None and witness and self.whole:  # a table known to fit: never ends empty-handed
            start = highspy.HighsSolution()
            start.col_value = self.start
            start.value_valid = True
            self.highs.setSolution(start)
        self.highs.run()
        self.solves += 1
        status = self.highs.getModelStatus()
        if status in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kUnboundedOrInfeasible):
            # presolve may call a model "unbounded or infeasible" from tolerances alone: ask again without it
            self.highs.setOptionValue("presolve", "off")
            self.highs.run()
            self.solves += 1
            self.highs.setOptionValue("presolve", "choose")
            status = self.highs.getModelStatus()
        info = self.highs.getInfo()
        solution = self.highs.getSolution()
        has_point = info.primal_solution_status == 2 and solution.value_valid
        if has_point:
            self._record(np.asarray(solution.col_value))
            if not self.extra_rows and self.whole:
                self.start = list(solution.col_value)
        if status == highspy.HighsModelStatus.kOptimal:
            self.feasible = True
            return "optimal", info.objective_function_value, info.objective_function_value
        if status == highspy.HighsModelStatus.kInfeasible:
            if not self.extra_rows:  # the component itself, not a question asked of it
                self.feasible = self.feasible or False
            return "infeasible", math.nan, math.nan
        self.feasible = True if has_point else self.feasible
        best = info.objective_function_value if has_point else math.nan
        bound = info.mip_dual_bound if math.isfinite(info.mip_dual_bound) else \
            (math.inf if sense == highspy.ObjSense.kMaximize else -math.inf)
        return "limit", best, bound

    def _record(self, full: np.ndarray) -> None:
        if not self.recording:
            return
        point = full[: self.n]
        if self.single is not None:  # 0.0 + a x, as the sparse product sums a row from 0.0
            cols, coefs = self.single
            values = (0.0 + coefs * point[cols]) + self.constants
        else:
            values = self.matrix @ point + self.constants
        np.minimum(self.low, values, out=self.low)
        np.maximum(self.high, values, out=self.high)
        cols = self.integral_cols
        whole = not len(cols) or bool(np.all(np.abs(full[cols] - np.round(full[cols])) <= 1e-6))
        if whole:
            np.minimum(self.int_low, values, out=self.int_low)
            np.maximum(self.int_high, values, out=self.int_high)
        if self.sums:
            if self._sum_matrix is None:  # built once every sum is declared
                keys = list(self.sums)
                entries = [(r, slot) for r, key in enumerate(keys) for slot in self.sums[key]]
                self._sum_row = {key: r for r, key in enumerate(keys)}
                self._sum_matrix = coo_matrix((np.ones(len(entries)),
                                               ([r for r, _ in entries], [c for _, c in entries])),
                                              shape=(len(keys), len(values))).tocsr()
                self._sum_seen = np.full(len(keys), -np.inf)
                self._sum_int = np.full(len(keys), -np.inf)
            totals = self._sum_matrix @ values
            np.maximum(self._sum_seen, totals, out=self._sum_seen)
            if whole:
                np.maximum(self._sum_int, totals, out=self._sum_int)
        for q, (num, den, multiplier) in (self.pins.items() if whole or self.relaxed else ()):
            d = self._value(point, den)
            if d >= 0.5:
                rate = multiplier * self._value(point, num) / d
                low_high = self.seen_rate[q]
                low_high[0], low_high[1] = min(low_high[0], rate), max(low_high[1], rate)

    def cleared(self, p: int) -> bool:
        """Tables seen show the figure can reach the threshold and differ by a unit: in
        whole numbers, or in the relaxation with a unit to spare on both counts."""
        k = self.slot[p]
        if self.relaxed:
            return self.high[k] >= self.threshold - EPS and self.high[k] - self.low[k] >= 1 - EPS
        if self.int_high[k] >= self.threshold - EPS and self.int_high[k] - self.int_low[k] >= 1 - EPS:
            return True
        return not self.diophantine and self.high[k] >= self.threshold + 1 - EPS and \
            self.high[k] - self.low[k] >= 2 - EPS

    def feasible_with(self, expr: tuple[dict[int, float], float], low: float, high: float,
                      whole: bool = False) -> bool:
        """Whether some table (in whole numbers if `whole`) has low <= expression <= high;
        its values are recorded. A solve stopped by its time limit answers no: fails safe."""
        coefs, constant = expr
        if not coefs:
            return low - EPS <= constant <= high + EPS
        self.whole_numbers(whole)
        try:
            with self._with_row(coefs, low - constant, high - constant):
                status, *_ = self._run({}, highspy.ObjSense.kMinimize)
        finally:
            self.whole_numbers(False)
        return status == "optimal"

    def snap(self, rate_terms: list, threshold: float, dense_from: int = 1000, passes: int = 3) -> None:
        """Bounds of the hidden terms of published rates snapped to the whole values their
        rounding allows: the linear bounds of each denominator, then the first and last
        denominator in them with a whole numerator that rounds right (and the numerators
        that go with them), until nothing moves. 34.4 % with at most 54 women means 32.
        From `dense_from` on, every denominator has a numerator (1 / 1000 < 0.1 %): skipped."""
        mine = [t for t in rate_terms if t[0] in self.local and t[1] in self.local]
        self.recording = False  # a table of the model before snapping may not fit after it
        try:
            self._snap(mine, threshold, dense_from, passes)
        finally:
            self.recording = True

    def _snap(self, mine: list, threshold: float, dense_from: int, passes: int) -> None:
        for _ in range(passes if mine else 0):
            moved = False
            for num, den, rate, half, multiplier, contributors in mine:
                n, d = self.local[num], self.local[den]
                low = self._run({d: 1.0}, highspy.ObjSense.kMinimize)
                high = self._run({d: 1.0}, highspy.ObjSense.kMaximize)
                if low[0] != "optimal" or high[0] != "optimal" or high[1] >= dense_from:
                    continue
                dens, nums = allowed_terms(rate, half, multiplier, threshold, contributors,
                                           math.ceil(low[1] - EPS), math.floor(high[1] + EPS))
                if not dens:
                    continue  # no whole table at all: `consistent` in whole numbers says so
                for col, lo, hi in ((d, dens[0], dens[-1]), (n, nums[0], nums[-1])):
                    current = self.highs.getLp()
                    old_lo, old_hi = current.col_lower_[col], current.col_upper_[col]
                    if lo > old_lo + EPS or hi < old_hi - EPS:
                        self.highs.changeColBounds(col, max(lo, old_lo), min(hi, old_hi))
                        moved = True
            if not moved:
                break

    def consistent(self) -> bool:
        """Whether some table in whole numbers agrees with everything published (the
        relaxation first: when it has no table, neither have whole numbers)."""
        status, *_ = self._run({}, highspy.ObjSense.kMinimize)
        if status != "optimal":
            return False
        if self.relaxed:
            return True
        self.whole_numbers(True)
        try:
            status, *_ = self._run({}, highspy.ObjSense.kMinimize)
        finally:
            self.whole_numbers(False)
        return status == "optimal"

    def reaches(self, expr: tuple[dict[int, float], float], level: float) -> bool:
        """Whether some table in whole numbers puts the expression at `level` or above: the
        relaxation answers when it can (no, or yes with a unit to spare); whole numbers
        decide where the linear bound straddles the level."""
        if not self.feasible_with(expr, level, np.inf):
            return False
        return self.relaxed or (not self.diophantine and self.feasible_with(expr, level + 1, np.inf)) or \
            self.feasible_with(expr, level, np.inf, whole=True)

    def below(self, expr: tuple[dict[int, float], float], level: float) -> bool:
        """Whether some table in whole numbers puts the expression at `level` or below."""
        if not self.feasible_with(expr, -np.inf, level):
            return False
        return self.relaxed or (not self.diophantine and self.feasible_with(expr, -np.inf, level - 1)) or \
            self.feasible_with(expr, -np.inf, level, whole=True)

    def witness(self, rounds: int = 3) -> None:
        """Tables consistent with what is published that clear as many figures as possible
        (in whole numbers where the relaxation cannot be trusted: `diophantine`)."""
        self.whole_numbers(self.diophantine)
        try:
            self._witness(rounds)
        finally:
            self.whole_numbers(False)

    def _witness(self, rounds: int) -> None:
        todo = list(self.protected)
        for _ in range(rounds):
            low = [p for p in todo if self.high[self.slot[p]] < self.threshold - EPS]
            if low:
                status, *_ = self._run({self.copy_of[p]: 1.0 for p in low}, highspy.ObjSense.kMaximize, witness=True)
                if status == "infeasible":
                    return
            narrow = [p for p in todo if not self.cleared(p)]
            if not narrow:
                return
            objective: dict[int, float] = defaultdict(float)
            for p in narrow:
                for c, v in self.expr[p][0].items():
                    objective[c] += v
            self._run(objective, highspy.ObjSense.kMinimize, witness=True)
            still = [p for p in narrow if not self.cleared(p)]
            if len(still) == len(narrow):
                return  # no progress: the exact bounds decide the rest
            todo = still

    def maximum(self, expr: tuple[dict[int, float], float], integral: bool) -> tuple[float, float] | None:
        """(best found, proven upper bound) of an expression in whole numbers; None if
        nothing is feasible."""
        return self._bound(expr, integral, highspy.ObjSense.kMaximize)

    def minimum(self, expr: tuple[dict[int, float], float], integral: bool) -> tuple[float, float] | None:
        """(best found, proven lower bound) of an expression in whole numbers; None if
        nothing is feasible."""
        return self._bound(expr, integral, highspy.ObjSense.kMinimize)

    def _bound(self, expr: tuple[dict[int, float], float], integral: bool, sense) -> tuple[float, float] | None:
        self.whole_numbers(True)
        try:
            status, best, bound = self._run(expr[0], sense)
        finally:
            self.whole_numbers(False)
        if status == "infeasible":
            return None
        best, bound = best + expr[1], bound + expr[1]
        if not (integral and status == "optimal"):
            return best, bound
        upward = sense == highspy.ObjSense.kMaximize
        return round(best), (math.floor(bound + EPS) if upward else math.ceil(bound - EPS))

    def _with_row(self, coefs: dict[int, float], low: float, high: float) -> _ExtraRow:
        """Optimise with one more row, removed afterwards (a context manager)."""
        return _ExtraRow(self, coefs, low, high)

    def rate_apart(self, q: int) -> bool | None:
        """Whether two tables give a masked rate values more than one rounding unit apart
        (True), or not (False); None when the rate exists in no table. A table with the
        rate beyond a seen value +/- the unit is looked for as a feasibility question,
        the rate's exact range (Dinkelbach's method) only if neither exists."""
        num, den, multiplier = self.pins[q]

        def lin(ratio: float) -> tuple[dict[int, float], float]:  # multiplier x num - ratio x den
            coefs: dict[int, float] = defaultdict(float)
            for c, v in num[0].items():
                coefs[c] += multiplier * v
            for c, v in den[0].items():
                coefs[c] -= ratio * v
            return dict(coefs), multiplier * num[1] - ratio * den[1]

        self.whole_numbers(not self.relaxed)
        try:
            return self._rate_apart(q, lin)
        finally:
            self.whole_numbers(False)

    def _rate_apart(self, q: int, lin) -> bool | None:
        num, den, multiplier = self.pins[q]
        with self._with_row(den[0], 1.0 - den[1], np.inf):
            low, high = self.seen_rate[q]
            if not math.isfinite(low):
                status, *_ = self._run({}, highspy.ObjSense.kMinimize)
                if status == "infeasible":
                    return None
                low, high = self.seen_rate[q]
                if not math.isfinite(low):
                    return False  # no table found in time: fails safe
            if high - low > self.rate_unit + EPS:
                return True
            for ratio, sense in ((low + self.rate_unit + 2 * EPS, 1.0), (high - self.rate_unit - 2 * EPS, -1.0)):
                coefs, constant = lin(ratio)  # sense x (multiplier num - ratio den) >= 0
                bounds = (-constant, np.inf) if sense > 0 else (-np.inf, -constant)
                if coefs:
                    with self._with_row(coefs, *bounds):
                        self._run({}, highspy.ObjSense.kMinimize)
                low, high = self.seen_rate[q]
                if high - low > self.rate_unit + EPS:
                    return True
            return False


class _ExtraRow:
    """One more row in a component's model while a question is asked (`Component._with_row`)."""

    def __init__(self, component: Component, coefs: dict[int, float], low: float, high: float) -> None:
        self.component, self.coefs, self.low, self.high = component, coefs, low, high

    def __enter__(self) -> None:
        component = self.component
        component.extra_rows += 1
        self.at = component.highs.getNumRow()
        component.highs.addRow(self.low, self.high, len(self.coefs), np.array(list(self.coefs), dtype=np.int32),
                               np.array(list(self.coefs.values()), dtype=float))

    def __exit__(self, *exc) -> None:
        self.component.extra_rows -= 1
        self.component.highs.deleteRows(1, np.array([self.at], dtype=np.int32))


def _upper_bounds(n: int, rows: list[tuple[dict[int, float], float, float]], passes: int = 4) -> np.ndarray:
    """Upper bounds of non-negative unknowns implied by the rows (a few passes of interval
    propagation): a zone's measure is at most its parent's, a hidden term at most what an
    inequality puts above it... Tight bounds make the whole-number solves much faster;
    they exclude no table, being implied by the rows."""
    upper = np.full(n, UPPER)
    for _ in range(passes):
        changed = False
        for coefs, low, high in rows:
            # sum(a x) <= high: a_i x_i <= high - sum_{j != i} min(a_j x_j), with min = 0 or a_j u_j
            for bound, sign in ((high, 1.0), (-low, -1.0)):
                if not math.isfinite(bound):
                    continue
                mins = {c: min(0.0, sign * v * upper[c]) for c, v in coefs.items()}
                total = sum(mins.values())
                if not math.isfinite(total):
                    continue
                for c, v in coefs.items():
                    a = sign * v
                    if a > 0:
                        cap = (bound - (total - mins[c])) / a
                        if cap < upper[c] - 1e-9:
                            upper[c] = max(cap, 0.0)
                            changed = True
        if not changed:
            break
    return upper
