"""The exact attacker (see tests/attacker.py): min and max of every hidden figure and sum in
whole numbers with scipy.optimize.milp, over the shared model of the reader facts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tests.attacker import (
    BIG,
    EPS,
    INF,
    Contradiction,
    Leak,
    Model,
    Reader,
    _Truth,
    rate_leak,
    target_leak,
)

DEFAULT_READER = Reader()  # the published contract's reader, the default of the attacks below

# -- (b) exact, in whole numbers, with HiGHS -----------------------------------------------

class _Milp:
    def __init__(self, model: Model):
        from scipy.sparse import lil_matrix

        self.m = model
        n = len(model.names)
        disj = [i for i in range(n) if model.disjunctive[i]]
        self.n = n
        self.nz = len(disj)
        total = n + self.nz
        rows = []
        for idx, coefs, rhs in model.cons:
            rows.append((dict(zip(idx, coefs)), -np.inf, rhs))
        M = 2.0 * BIG
        T = float(model.threshold)
        for k, i in enumerate(disj):  # x <= M z ; x >= T z - M (1 - z)
            z = n + k
            rows.append(({i: 1.0, z: -M}, -np.inf, 0.0))
            rows.append(({i: 1.0, z: -(T + M)}, -M, np.inf))
        A = lil_matrix((len(rows), total))
        lb, ub = np.empty(len(rows)), np.empty(len(rows))
        for r, (coefs, lo, hi) in enumerate(rows):
            for j, a in coefs.items():
                A[r, j] = a
            lb[r], ub[r] = lo, hi
        self.A = A.tocsr()
        self.clb, self.cub = lb, ub
        self.vlb = np.array([max(-BIG, lo) for lo in model.lo] + [0.0] * self.nz)
        self.vub = np.array([min(BIG, h) for h in model.hi] + [1.0] * self.nz)
        self.integrality = np.array([1 if model.integer[i] else 0 for i in range(n)] + [1] * self.nz)

    def solve(self, c: np.ndarray, time_limit: float | None = None):
        from scipy.optimize import Bounds, LinearConstraint, milp

        # no presolve: scipy's bundled HiGHS presolve once returned 30 as the optimum of a
        # maximum whose true value is 99 825 (an RPE's childminders, truth 46): a wrong bound
        options = {"mip_rel_gap": 0.0, "presolve": False}
        if time_limit:
            options["time_limit"] = time_limit
        res = milp(c, constraints=[LinearConstraint(self.A, self.clb, self.cub)], integrality=self.integrality,
                   bounds=Bounds(self.vlb, self.vub), options=options)
        if res.status == 2:
            return None
        if res.status != 0 and not (time_limit and res.status == 1):
            raise AssertionError(f"milp: {res.message}")
        return res

    def ratio_range(self, num: int, den: int, mult: float) -> tuple[float, float]:
        """Bounds on mult num / den over the whole-number solutions with den >= 1
        (Dinkelbach; each step's dual bound keeps the result sound when HiGHS stops early)."""
        out = []
        for sign in (1.0, -1.0):
            c = np.zeros(self.n + self.nz)
            c[den] = 1.0
            x = self.solve(c).x
            q = mult * x[num] / x[den]
            slack = -INF
            for _ in range(30):
                c = np.zeros(self.n + self.nz)
                c[num], c[den] = sign * mult, -sign * q
                res = self.solve(c, time_limit=1.0)
                bound = getattr(res, "mip_dual_bound", None)
                bound = res.fun if res.status == 0 and bound is None else bound
                if res.x is not None and res.fun < -1e-9:
                    x = res.x
                    q = mult * x[num] / x[den]  # a better solution: go on from its ratio
                    continue
                # sign (mult num - q den) >= bound for every solution, den >= 1:
                # sign ratio >= sign q + min(bound, 0)
                slack = min(bound if bound is not None and np.isfinite(bound) else -INF, 0.0)
                break
            out.append(q + sign * slack if np.isfinite(slack) else (-INF if sign > 0 else INF))
        return out[0], out[1]


def exact_attack(published: pd.DataFrame, zones: pd.DataFrame, indicators, policy,
                 confidential: pd.DataFrame | None = None, reader: Reader = DEFAULT_READER) -> list[Leak]:
    """Min and max, in whole numbers, of every hidden figure and sum that the solutions
    found so far (witnesses) do not already clear: a figure seen at two values one of
    which is >= threshold, or a sum seen >= threshold, is no leak."""
    model = Model(published, zones, indicators, policy, reader)
    truth = _Truth(model, confidential, indicators) if confidential is not None else None
    solver = _Milp(model)
    T = model.threshold
    n = solver.n + solver.nz
    pool: list[np.ndarray] = []

    def solve(c: np.ndarray) -> float:
        res = solver.solve(c)
        if res is None:
            raise Contradiction("the published table contradicts the reader facts (milp)")
        pool.append(res.x)
        return res.fun

    ids = [t.var for t in model.targets]
    if ids:
        c = np.zeros(n)
        c[ids] = 1.0
        solve(c)
        solve(-c)
    leaks = []
    for t in model.targets:
        i = t.var
        seen = [x[i] for x in pool]
        wlo, whi = min(seen, default=INF), max(seen, default=-INF)
        if whi >= T - EPS and (t.is_sum or whi - wlo > 0.5):
            continue  # witnessed: neither small nor pinned
        c = np.zeros(n)
        c[i] = 1.0
        lo, hi = solve(c), -solve(-c)
        if model.integer[i]:
            lo, hi = math.ceil(lo - 1e-6), math.floor(hi + 1e-6)
        leaks.append(target_leak(model, t, lo, hi, truth, "milp"))
    step = 10.0 ** -policy.rate_decimals
    for r in model.rate_targets:
        if any(x[r.den] < 0.5 for x in pool):
            continue  # the rate may not exist
        c = np.zeros(n)
        c[r.den] = 1.0
        if solve(c) < 1 - 1e-6:
            continue
        ratios = [r.mult * x[r.num] / x[r.den] for x in pool if x[r.den] >= 0.5]
        if max(ratios) - min(ratios) >= step:
            continue  # witnessed: two values a rounding step apart
        low, high = solver.ratio_range(r.num, r.den, r.mult)
        leaks.append(rate_leak(r, low, high, step, truth, "milp"))
    return [leak for leak in leaks if leak is not None]


def exact_interval(published: pd.DataFrame, zones: pd.DataFrame, indicators, policy, key: tuple,
                   reader: Reader = DEFAULT_READER) -> tuple[float, float]:
    """The exact attacker's whole-number range of one figure or sum (a target's key),
    whether it is a leak or not: to settle what the propagation attacker claims."""
    model = Model(published, zones, indicators, policy, reader)
    solver = _Milp(model)
    target = next(t for t in model.targets if t.key == key)
    c = np.zeros(solver.n + solver.nz)
    c[target.var] = 1.0
    low, high = solver.solve(c), solver.solve(-c)
    if low is None or high is None:
        raise Contradiction("the published table contradicts the reader facts (milp)")
    return math.ceil(low.fun - 1e-6), math.floor(-high.fun + 1e-6)
