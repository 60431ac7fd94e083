"""The propagation attacker (see tests/attacker.py): integer bounds propagation with case
splits and probes, over the shared model of the reader facts."""

from __future__ import annotations

import math
from collections import defaultdict

import pandas as pd

from tests.attacker import (
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

DEFAULT_READER = Reader()  # the published contract's reader, the default of the attack below

# -- (a) interval propagation ------------------------------------------------------------

class _Propagator:
    def __init__(self, model: Model, max_steps: int = 200_000):
        self.m = model
        self.lo = list(model.lo)
        self.hi = list(model.hi)
        self.of_var: list[list[int]] = [[] for _ in model.names]
        for c, (idx, _, _) in enumerate(model.cons):
            for i in idx:
                self.of_var[i].append(c)
        self.max_steps = max_steps
        self.trail: list[tuple[int, float, float]] | None = None

    def _set(self, i: int, lo: float, hi: float) -> bool:
        """Tighten variable i to [lo, hi] (rounded, holes applied); False if empty."""
        m = self.m
        if m.integer[i]:
            lo = math.ceil(lo - EPS) if lo > -INF else lo
            hi = math.floor(hi + EPS) if hi < INF else hi
        T = self.hole(i)
        if T:
            if 1 <= hi <= T - 1:
                hi = 0.0
            if 1 <= lo <= T - 1:
                lo = float(T)
        if lo > hi + EPS:
            return False
        if self.trail is not None:
            self.trail.append((i, self.lo[i], self.hi[i]))
        self.lo[i], self.hi[i] = lo, hi
        return True

    def propagate(self, queue: list[int]) -> bool:
        lo, hi, cons = self.lo, self.hi, self.m.cons
        queued = set(queue)
        queue = list(queue)
        steps = 0
        moves: dict[int, int] = defaultdict(int)  # bounds creeping one unit at a time: stop it
        while queue:
            steps += 1
            if steps > self.max_steps:
                return True  # stop early: sound, only weaker
            c = queue.pop()
            queued.discard(c)
            idx, coefs, rhs = cons[c]
            finite, ninf, inf_at = 0.0, 0, -1
            for i, a in zip(idx, coefs):
                b = lo[i] if a > 0 else hi[i]
                if b in (INF, -INF):
                    ninf += 1
                    inf_at = i
                else:
                    finite += a * b
            if ninf > 1:
                continue
            if ninf == 0 and finite > rhs + 1e-6 * max(1.0, abs(rhs), abs(finite)):
                return False
            for i, a in zip(idx, coefs):
                b = lo[i] if a > 0 else hi[i]
                if ninf == 1:
                    if i != inf_at:
                        continue
                    rest = finite
                else:
                    rest = finite - a * b
                bound = (rhs - rest) / a
                tol = 1e-9 * max(1.0, abs(bound))
                if a > 0:
                    if bound < hi[i] - tol:
                        new_lo, new_hi = lo[i], bound + tol
                    else:
                        continue
                else:
                    if bound > lo[i] + tol:
                        new_lo, new_hi = bound - tol, hi[i]
                    else:
                        continue
                if moves[i] > 40:
                    continue  # sound: a bound left looser than it could be
                moves[i] += 1
                old = (lo[i], hi[i])
                if not self._set(i, new_lo, new_hi):
                    return False
                if (lo[i], hi[i]) != old and (self.m.integer[i] or abs(lo[i] - old[0]) + abs(hi[i] - old[1]) > 1e-7):
                    for d in self.of_var[i]:
                        if d != c and d not in queued:
                            queued.add(d)
                            queue.append(d)
        return True

    # -- probes: refute "x in [a, b]" by propagation and one level of case splits ----------

    def _restrict(self, i: int, a: float, b: float) -> bool:
        if not self._set(i, max(self.lo[i], a), min(self.hi[i], b)):
            return False
        return self.propagate(list(self.of_var[i]))

    def _undo(self, mark: int) -> None:
        while len(self.trail) > mark:
            i, lo, hi = self.trail.pop()
            self.lo[i], self.hi[i] = lo, hi

    def hole(self, i: int) -> float:
        """T when x_i is 0 or at least T (a published figure under the primary rule), else 0."""
        return float(self.m.threshold) if self.m.disjunctive[i] else 0.0

    def undecided(self, i: int) -> bool:
        T = self.hole(i)
        return bool(T) and self.lo[i] <= 0 and self.hi[i] >= T

    def refuted(self, i: int, a: float, b: float, splits: int = 8) -> bool:
        """True when x_i in [a, b] contradicts the facts (x_i's other values survive)."""
        self.trail = []
        try:
            if not self._restrict(i, a, b):
                return True
            if splits <= 0:
                return False
            # case splits on the undecided disjunctions the probe touched
            touched = []
            seen = set()
            for j, _, _ in self.trail:
                if j not in seen and self.undecided(j):
                    seen.add(j)
                    touched.append(j)
            for j in touched[:splits]:
                if not self.undecided(j):
                    continue
                T = self.hole(j)
                mark = len(self.trail)
                zero_ok = self._restrict(j, -INF, 0.0)
                self._undo(mark)
                high_ok = self._restrict(j, T, INF)
                self._undo(mark)
                if not zero_ok and not high_ok:
                    return True
                branch = (-INF, 0.0) if zero_ok and not high_ok else (T, INF) if high_ok and not zero_ok else None
                if branch and not self._restrict(j, *branch):
                    return True
            return False
        finally:
            if self.trail is not None:
                self._undo(0)
            self.trail = None

    def commit(self, i: int, a: float, b: float) -> None:
        if not self._restrict(i, a, b):
            raise Contradiction(f"{self.m.names[i]}: committing a proven bound emptied the domains")


def _root(model: Model) -> _Propagator:
    p = _Propagator(model)
    if not p.propagate(list(range(len(model.cons)))):
        raise Contradiction("the published table contradicts the reader facts")
    settle(p, len(model.names))
    return p


def propagation_attack(published: pd.DataFrame, zones: pd.DataFrame, indicators, policy,
                       confidential: pd.DataFrame | None = None, reader: Reader = DEFAULT_READER,
                       shave: int = 3) -> list[Leak]:
    model = Model(published, zones, indicators, policy, reader)
    truth = _Truth(model, confidential, indicators) if confidential is not None else None
    p = _root(model)
    T = model.threshold
    intervals = {}
    for t in model.targets:
        i = t.var
        refine(p, i, model.integer[i], T, shave)
        intervals[i] = (p.lo[i], p.hi[i])
    # bounds only tighten: read the final ones
    leaks = []
    for t in model.targets:
        leaks.append(target_leak(model, t, p.lo[t.var], p.hi[t.var], truth, "propagation"))
    step = 10.0 ** -policy.rate_decimals
    for r in model.rate_targets:
        if p.lo[r.den] < 1:
            continue
        low = r.mult * p.lo[r.num] / p.hi[r.den] if p.hi[r.den] < INF else 0.0
        high = r.mult * p.hi[r.num] / p.lo[r.den]
        leaks.append(rate_leak(r, low, high, step, truth, "propagation"))
    return [leak for leak in leaks if leak is not None]


def refine(p: _Propagator, i: int, integer: bool, T: float, shave: int) -> None:
    """Probe the figure `i` at the verdict's edges: at the threshold or above, above 0, and
    (a whole number) its ends shaved one value at a time: all of a narrow interval, a few else."""
    if p.hi[i] >= T and p.lo[i] <= T - 1 and p.refuted(i, T, INF):
        p.commit(i, -INF, T - 1)
    if p.lo[i] <= 0 < p.hi[i]:
        if p.refuted(i, 1, INF):
            p.commit(i, -INF, 0)
        elif p.lo[i] <= -1 and p.refuted(i, -INF, -1):
            p.commit(i, 0, INF)
    if integer and p.lo[i] < p.hi[i]:
        width = p.hi[i] - p.lo[i]
        n = int(width) if width <= 2 * T else shave
        for _ in range(n):
            if p.hi[i] < INF and p.lo[i] < p.hi[i] and p.refuted(i, p.hi[i], p.hi[i]):
                p.commit(i, -INF, p.hi[i] - 1)
            else:
                break
        for _ in range(n):
            if p.lo[i] > -INF and p.lo[i] < p.hi[i] and p.refuted(i, p.lo[i], p.lo[i]):
                p.commit(i, p.lo[i] + 1, INF)
            else:
                break


def settle(p: _Propagator, n: int) -> None:
    """Singleton case splits on the "0 or >= threshold" disjunctions, to a fixpoint."""
    for _ in range(4):
        changed = False
        for i in range(n):
            if not p.undecided(i):
                continue
            if p.refuted(i, -INF, 0.0, splits=0):
                p.commit(i, p.hole(i), INF)
                changed = True
            elif p.refuted(i, p.hole(i), INF, splits=0):
                p.commit(i, -INF, 0.0)
                changed = True
        if not changed:
            break
