"""An attacker of several releases (issue 22), written apart from the pipeline's audit and
masking (it imports nothing of pipeline/disclosure/ but the policy's dataclass).

The reader holds every release of the study. Each release (`ReleaseView`) brings what the
single-release reader of tests/attacker.py knows about it (its published values at its own
rounding, its statuses, its zone tree and additivity, the primary rule at its own threshold,
the policy's inequalities, non-negativity, whole numbers): `tests.attacker.Model` builds
those facts release by release, year by year. They are then put together:

- a zone is identified by its level and what it covers: the set of communes under it, each
  commune code read through `commune_changes` (old -> new), so that a commune nouvelle covers
  the old communes merged into it (in a release where an old commune still exists, it is a
  commune of its own and the nouvelle's ancestor covers only itself). An RPE of another
  perimeter is another zone;
- a figure (zone identity, year, measure) of two releases is ONE unknown exactly when the
  confidential values behind the two releases agree (the strongest reader: he knows which
  figures a CAF correction changed); a complement is one unknown when both its terms are;
- the union's hidden figures: every figure hidden in some release (a masked count, a term or
  complement of a masked rate or of a rate beside a masked term) and published in none; the
  sums of hidden figures of one kind under one zone of some release's tree (the whole set of
  hidden children); the masked rates no release publishes.

The verdict is tests/attacker.py's: a hidden figure pinned (not at 0 when zeros are
publishable) or proven in [1, threshold - 1], a sum proven in [1, threshold - 1], a masked
rate bounded within one rounding step (the coarsest step of the releases that mask it).
The threshold of the verdict is the `policy`'s; each release's "0 or >= threshold" holes
are its own.

Means: integer bounds propagation with the disjunctions as holes, case splits and probes
(tests/attacker_propagation.py's propagator, with a hole per variable), then, per year, whole
number programmes (scipy.optimize.milp): witness tables clear what they can, and every figure
or sum left gets its exact min and max (a solve stopped by its time limit gives its dual
bound, a sound outer bound). Every derived interval, of every variable, is checked against
the confidential truth behind its release: `AttackerWrong` if one misses it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tests.attacker import (
    EPS,
    INF,
    AttackerWrong,
    Contradiction,
    Leak,
    Model,
    RateTarget,
    Target,
    rate_leak,
    target_leak,
    truths,
)
from tests.attacker_propagation import _Propagator, refine, settle

BIG = 1_000_000  # upper bound of every measure in the whole-number programmes


@dataclass
class ReleaseView:
    """One release as the reader holds it (`published`: the columns of published.indicators;
    `zones`: level, zone_code, parent_code; `confidential`: the confidential.indicators rows
    behind it, for the identity of figures and the truth check)."""

    name: str
    published: pd.DataFrame
    zones: pd.DataFrame
    confidential: pd.DataFrame
    rate_decimals: int
    threshold: int
    build_seconds: float | None = None


@dataclass
class Stats:
    """What the last `attack_releases` did (set on the module, for reports and tests)."""

    seconds: float = 0.0
    variables: int = 0
    constraints: int = 0
    targets: int = 0
    sums: int = 0
    rate_targets: int = 0
    linked: int = 0  # figures of one release linked to another's
    corrected: int = 0  # figures present in several releases with different values behind
    milp_solves: int = 0
    milp_timeouts: int = 0
    known_before: int = 0  # leaks of the union the earlier releases alone give (left out)
    by_means: dict = field(default_factory=dict)


LAST = Stats()

# -- identity of zones -------------------------------------------------------------------


def _changes(commune_changes) -> dict[str, str]:
    if commune_changes is None:
        return {}
    if isinstance(commune_changes, pd.DataFrame):
        return {str(a).zfill(5): str(b).zfill(5)
                for a, b in zip(commune_changes["ancien_code"], commune_changes["nouveau_code"])}
    return {str(a): str(b) for a, b in dict(commune_changes).items()}


def _tree(view: ReleaseView) -> tuple[dict[str, str], dict[str, str | None]]:
    level, parent = {}, {}
    for z in view.zones.itertuples(index=False):
        level[str(z.zone_code)] = str(z.level)
        parent[str(z.zone_code)] = str(z.parent_code) if isinstance(z.parent_code, str) and z.parent_code else None
    for z in view.published[["level", "zone_code", "parent_code"]].drop_duplicates().itertuples(index=False):
        code = str(z.zone_code)
        level.setdefault(code, str(z.level))
        if parent.get(code) is None and isinstance(z.parent_code, str) and z.parent_code:
            parent[code] = str(z.parent_code)
    return level, parent


def zone_identities(view: ReleaseView, changes: dict[str, str]) -> dict[str, tuple]:
    """zone_code -> (level, frozenset of what it covers) in one release."""
    level, parent = _tree(view)
    communes = {c for c, lv in level.items() if lv == "commune"}
    atoms: dict[str, set] = {c: {("commune", c)} for c in communes}
    for old in changes:
        if old in communes:
            continue  # still a commune of its own in this release
        code, seen = old, set()
        while code not in communes and code in changes and code not in seen:
            seen.add(code)
            code = changes[code]
        if code in communes:
            atoms[code].add(("commune", old))
    children = defaultdict(list)
    for c, p in parent.items():
        if p is not None:
            children[p].append(c)
    memo: dict[str, frozenset] = {}

    def cover(code: str) -> frozenset:
        if code in memo:
            return memo[code]
        if code in atoms:
            out = frozenset(atoms[code])
        elif children.get(code):
            out = frozenset().union(*(cover(k) for k in children[code]))
        else:
            out = frozenset({(level[code], code)})  # below the commune (IRIS), or a zone with nothing under it
        memo[code] = out
        return out

    return {code: (level[code], cover(code)) for code in level}


# -- the union ---------------------------------------------------------------------------


def _round(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 6)


class Union:
    """The reader's facts about every release of one year, over shared unknowns (the
    interface of tests/attacker.py's Model that the propagator reads, with a hole per variable)."""

    def __init__(self, releases: list[ReleaseView], year: int, indicators, policy, identities, labels,
                 blanks: str = "distinct"):
        self.policy = policy
        self.threshold = int(policy.threshold)
        self.names: list[tuple] = []
        self.index: dict[tuple, int] = {}
        self.lo: list[float] = []
        self.hi: list[float] = []
        self.integer: list[bool] = []
        self.hole: list[int] = []  # 0: none; T: the variable is 0 or >= T
        self.cons: list[tuple[list[int], list[float], float]] = []
        self.truth: list[float | None] = []
        self.targets: list[Target] = []
        self.rate_targets: list[RateTarget] = []
        self.rate_steps: dict[int, float] = {}
        self.linked = 0
        self.corrected = 0
        self.terms_of: dict[int, tuple] = {}  # complement -> the keys of its numerator and denominator
        defs = {i.id: i for i in indicators.indicators}
        hidden: dict[int, Target] = {}
        known_rates: set[tuple] = set()
        masked_rates: dict[tuple, tuple[RateTarget, float]] = {}
        figures_seen: dict[tuple, set] = defaultdict(set)  # (identity, measure) -> values behind
        built = []
        classes: dict[tuple, set] = defaultdict(set)  # (identity, year, measure) -> values known behind
        for view in releases:
            pol = dataclasses.replace(policy, threshold=int(view.threshold), rate_decimals=int(view.rate_decimals))
            pub = view.published[view.published["year"] == year]
            if pub.empty:
                continue
            m = Model(pub, view.zones, indicators, pol)
            conf = view.confidential[view.confidential["year"] == year]
            base = truths(m, conf, indicators)
            ident = identities[view.name]
            for (zone, yr_, name), v in base.items():
                if zone in ident:
                    classes[(ident[zone], yr_, name)].add(_round(v))
            built.append((view, m, base, ident))

        def behind(base, zid, zone, yr, measure):
            """The value behind a figure: the confidential one; a blank at source (no value)
            takes the one value the other releases hold, when blanks='unique'."""
            v = _round(base.get((zone, yr, measure)))
            if v is None and blanks == "unique" and len(classes.get((zid, yr, measure), ())) == 1:
                return next(iter(classes[(zid, yr, measure)]))
            if v is None and blanks == "never":
                return ("blank", view_name)  # a blank is an unknown of its own release
            return v

        release_maps = []
        named: set[tuple] = set()  # (identity, year, measure) already given a variable
        for view, m, base, ident in reversed(built):  # newest first: its figures keep the plain names
            view_name = view.name
            gmap: dict[int, int] = {}
            for i, (level, zone, yr, name) in enumerate(m.names):
                if isinstance(name, tuple) and name[0] == "sum":
                    continue
                zid = ident.get(zone, (level, frozenset({(level, zone + "@" + view.name)})))
                if isinstance(name, str):
                    t = behind(base, zid, zone, yr, name)
                    key = (zid, yr, name, t)
                    t = t if isinstance(t, float) else None
                else:
                    d = defs[name[1]]
                    tn, td = behind(base, zid, zone, yr, d.numerator), behind(base, zid, zone, yr, d.denominator)
                    t = None if not isinstance(tn, float) or not isinstance(td, float) else td - tn
                    key = (zid, yr, name, tn, td)
                figures_seen[(zid, name)].add(key[3:])
                label = labels[zid]
                if key not in self.index and (zid, yr, name) in named and "@" not in label:
                    label = f"{label}@{view.name}"  # a figure the CAF corrected since: another unknown
                named.add((zid, yr, name))
                g, new = self._var(key, (level, label, yr, name), m.integer[i], t)
                if not new:
                    self.linked += 1
                gmap[i] = g
                if isinstance(name, tuple):
                    self.terms_of[g] = ((zid, yr, d.numerator, tn), (zid, yr, d.denominator, td))
                self.lo[g] = max(self.lo[g], m.lo[i])
                self.hi[g] = min(self.hi[g], m.hi[i])
                if m.disjunctive[i]:
                    self.hole[g] = max(self.hole[g], int(view.threshold))
            for idx, coefs, rhs in m.cons:
                if all(i in gmap for i in idx):
                    self.cons.append(([gmap[i] for i in idx], list(coefs), rhs))
            for t in m.targets:
                if t.is_sum:
                    continue
                g = gmap[t.var]
                cells = {(self._cell(cell, zid_of(ident, cell[1], cell[0], view.name), labels), term)
                         for cell, term in t.cells}
                if g not in hidden:
                    _, label, _, name = self.names[g]
                    what = f"{name[1]} complement" if isinstance(name, tuple) else name
                    hidden[g] = Target(g, year, f"{self.names[g][0]} {label} {what}", set(), False,
                                       ("figure", label, year, name))
                hidden[g].cells |= cells
            step = 10.0 ** -int(view.rate_decimals)
            for (zone, yr, ind), st in m.status.items():
                d = defs[ind]
                if d.kind == "ratio" and st == "published":
                    known_rates.add((gmap[m.index[(zone, yr, d.numerator)]], gmap[m.index[(zone, yr, d.denominator)]],
                                     ind))
            for r in m.rate_targets:
                key = (gmap[r.num], gmap[r.den], r.cell[2])
                zid = zid_of(ident, r.cell[1], r.cell[0], view.name)
                cell = self._cell(r.cell, zid, labels)
                rt = RateTarget(gmap[r.num], gmap[r.den], r.mult, year, f"{cell[0]} {cell[1]} {cell[2]}", cell)
                old = masked_rates.get(key)
                masked_rates[key] = (rt, max(step, old[1] if old else 0.0))
            release_maps.append((view, m, gmap, ident))
        self.corrected = sum(1 for v in figures_seen.values() if len(v) > 1)
        # known: published counts (lo == hi from a published value), complements of known terms
        def known(g: int) -> bool:
            if isinstance(self.names[g][3], str):
                return self.lo[g] == self.hi[g]
            return all(k in self.index and known(self.index[k]) for k in self.terms_of[g])

        for g in list(hidden):
            if known(g):
                del hidden[g]
        self.targets = list(hidden.values())
        for key, (rt, step) in masked_rates.items():
            if key not in known_rates:
                self.rate_targets.append(rt)
                self.rate_steps[len(self.rate_targets) - 1] = step
        # sums of hidden figures of one kind under one zone of some release's tree
        sums: dict[tuple, int] = {}
        for view, m, gmap, _ident in release_maps:
            groups = defaultdict(list)
            for (zone, _yr, name), i in m.index.items():
                if isinstance(name, tuple) and name[0] == "sum":
                    continue
                p = m.parent.get(zone)
                if p is None or i not in gmap or gmap[i] not in hidden:
                    continue
                groups[(p, name)].append(gmap[i])
            for (p, name), members in groups.items():
                members = sorted(set(members))
                if len(members) < 2:
                    continue
                pi = m.index.get((p, year, name))
                pg = gmap.get(pi) if pi is not None else None
                key = (tuple(members), name)
                if key in sums:
                    s = sums[key]
                else:
                    s = len(self.names)
                    plabel = self.names[pg][1] if pg is not None else p + "@" + view.name
                    self.names.append((m.level_of.get(p, "?"), plabel, year, ("sum", name)))
                    self.lo.append(-INF if isinstance(name, tuple) else 0.0)
                    self.hi.append(INF)
                    self.integer.append(all(self.integer[g] for g in members))
                    self.hole.append(0)
                    vals = [self.truth[g] for g in members]
                    self.truth.append(None if any(v is None for v in vals) else float(sum(vals)))
                    self._eq({s: 1.0, **{g: -1.0 for g in members}}, 0.0)
                    sums[key] = s
                    what = f"{name[1]} complement" if isinstance(name, tuple) else name
                    kids = ", ".join(sorted(self.names[g][1] for g in members))
                    self.targets.append(Target(s, year, f"sum of {what} over {kids} (under {plabel})",
                                               set().union(*(hidden[g].cells for g in members)), True,
                                               ("sum", plabel, year, name,
                                                tuple(sorted(self.names[g][1] for g in members))),
                                               tuple(members)))
                if pg is not None:  # the same sum read off the parent
                    inside = set(members)
                    coefs = {s: 1.0, pg: -1.0}
                    for k in m.children[p]:
                        kg = gmap.get(m.index.get((k, year, name), -1))
                        if kg is None:
                            coefs = None
                            break
                        if kg not in inside:
                            coefs[kg] = coefs.get(kg, 0.0) + 1.0
                    if coefs is not None:
                        self._eq(coefs, 0.0)

    @property
    def disjunctive(self) -> list[bool]:
        return [h > 0 for h in self.hole]

    def _var(self, key, name, integer, truth) -> tuple[int, bool]:
        if key in self.index:
            return self.index[key], False
        g = len(self.names)
        self.index[key] = g
        self.names.append(name)
        self.lo.append(-INF if isinstance(name[3], tuple) else 0.0)
        self.hi.append(INF)
        self.integer.append(bool(integer))
        self.hole.append(0)
        self.truth.append(truth)
        return g, True

    def _eq(self, coefs: dict[int, float], rhs: float) -> None:
        coefs = {i: a for i, a in coefs.items() if a != 0}
        self.cons.append((list(coefs), list(coefs.values()), float(rhs)))
        self.cons.append((list(coefs), [-a for a in coefs.values()], -float(rhs)))

    @staticmethod
    def _cell(cell, zid, labels):
        level, _zone, ind = cell
        return (level, labels[zid], ind)

    leak_of = Model.leak_of  # the single-release attacker's verdict


def zid_of(ident, zone, level, release):
    return ident.get(zone, (level, frozenset({(level, zone + "@" + release)})))


class _Truth:
    def __init__(self, u: Union):
        self.values = u.truth

    def check(self, i: int, lo: float, hi: float, what: str) -> None:
        v = self.values[i]
        if v is not None and not (lo - 1e-6 <= v <= hi + 1e-6):
            raise AttackerWrong(f"{what}: derived [{lo}, {hi}] but the truth is {v}")


# -- propagation with a hole per variable ----------------------------------------------------


class _HolePropagator(_Propagator):
    """tests/attacker_propagation.py's propagator, each variable with its own hole [1, T_i - 1]."""

    def hole(self, i: int) -> float:
        return float(self.m.hole[i])  # each release's own threshold


def _propagate(u: Union, shave: int = 3) -> _HolePropagator:
    p = _HolePropagator(u)
    if not p.propagate(list(range(len(u.cons)))):
        raise Contradiction(f"the releases contradict the reader facts ({u.targets[:1]})")
    settle(p, len(u.names))
    for t in u.targets:
        refine(p, t.var, u.integer[t.var], u.threshold, shave)
    return p


# -- whole numbers, per connected component --------------------------------------------------


class _Exact:
    """The union of one year in whole numbers (HiGHS through scipy.optimize.milp), restricted
    to the component of the variables asked about."""

    def __init__(self, u: Union, lo: list[float], hi: list[float], time_limit: float):
        from scipy.sparse import csr_matrix

        self.u = u
        self.time_limit = time_limit
        n = len(u.names)
        holes = [i for i in range(n) if u.hole[i]]
        self.zof = {i: n + k for k, i in enumerate(holes)}
        total = n + len(holes)
        rows, cols, vals, ub = [], [], [], []
        r = 0
        for idx, coefs, rhs in u.cons:
            for i, a in zip(idx, coefs):
                rows.append(r)
                cols.append(i)
                vals.append(a)
            ub.append(rhs)
            r += 1
        lb = [-np.inf] * r
        M = 2.0 * BIG
        for i, z in self.zof.items():  # x <= M z ; x >= T z - M (1 - z)
            T = float(u.hole[i])
            rows += [r, r]
            cols += [i, z]
            vals += [1.0, -M]
            lb.append(-np.inf)
            ub.append(0.0)
            r += 1
            rows += [r, r]
            cols += [i, z]
            vals += [1.0, -(T + M)]
            lb.append(-M)
            ub.append(np.inf)
            r += 1
        self.A = csr_matrix((vals, (rows, cols)), shape=(r, total))
        self.clb, self.cub = np.array(lb), np.array(ub)
        self.vlb = np.array([max(-BIG, x) for x in lo] + [0.0] * len(holes))
        self.vub = np.array([min(BIG, x) for x in hi] + [1.0] * len(holes))
        for i, z in self.zof.items():  # decided holes
            if self.vlb[i] >= 1:
                self.vlb[z] = 1.0
            if self.vub[i] <= 0:
                self.vub[z] = 0.0
        self.integrality = np.array([1 if u.integer[i] else 0 for i in range(n)] + [1] * len(holes))
        # components: variables tied by some constraint
        parent = list(range(total))

        def find(a):
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        A = self.A.tocsr()
        for row in range(A.shape[0]):
            cs = A.indices[A.indptr[row]:A.indptr[row + 1]]
            for c in cs[1:]:
                ra, rb = find(cs[0]), find(c)
                if ra != rb:
                    parent[ra] = rb
        self.comp = np.array([find(i) for i in range(total)])
        self._sub: dict[int, tuple] = {}

    def _component(self, root: int):
        if root not in self._sub:
            cols = np.flatnonzero(self.comp == root)
            A = self.A[:, cols]
            rows = np.flatnonzero(np.diff(A.tocsr().indptr) > 0)
            self._sub[root] = (cols, A[rows], self.clb[rows], self.cub[rows])
        return self._sub[root]

    def capped(self, ids: list[int], T: float, stats: Stats):
        """A table with the figures `ids` (of one component) as high as they go up to T each:
        max sum u_i, u_i <= x_i, u_i <= T. (x of the component or None, cols)."""
        from scipy.optimize import Bounds, LinearConstraint, milp
        from scipy.sparse import csr_matrix, hstack, vstack

        cols, A, clb, cub = self._component(self.comp[ids[0]])
        pos = {int(j): k for k, j in enumerate(cols)}
        n, k = len(cols), len(ids)
        link = csr_matrix(([-1.0] * k + [1.0] * k,
                           (list(range(k)) * 2, [pos[i] for i in ids] + [n + r for r in range(k)])), shape=(k, n + k))
        big = vstack([hstack([A, csr_matrix((A.shape[0], k))]), link]).tocsr()
        lb = np.concatenate([clb, np.full(k, -np.inf)])
        ub = np.concatenate([cub, np.zeros(k)])
        c = np.concatenate([np.zeros(n), -np.ones(k)])
        vlb = np.concatenate([self.vlb[cols], np.full(k, -float(BIG))])
        vub = np.concatenate([self.vub[cols], np.full(k, float(T))])
        integrality = np.concatenate([self.integrality[cols], np.zeros(k)])
        stats.milp_solves += 1
        res = milp(c, constraints=[LinearConstraint(big, lb, ub)], integrality=integrality,
                   bounds=Bounds(vlb, vub), options={"presolve": False, "time_limit": min(1.0, self.time_limit)})
        if res.status == 2:
            raise Contradiction("the releases contradict the reader facts (milp)")
        if res.status != 0:
            stats.milp_timeouts += 1
            stats.by_means["capped_timeouts"] = stats.by_means.get("capped_timeouts", 0) + 1
        return (None if res.x is None else res.x[:n]), cols

    def solve(self, c: dict[int, float], stats: Stats):
        """min c.x over the component of c's variables: (bound, x of the component or None, cols)."""
        from scipy.optimize import Bounds, LinearConstraint, milp

        root = self.comp[next(iter(c))]
        cols, A, clb, cub = self._component(root)
        pos = {int(j): k for k, j in enumerate(cols)}
        cc = np.zeros(len(cols))
        for i, a in c.items():
            cc[pos[i]] = a
        options = {"mip_rel_gap": 0.0, "presolve": False, "time_limit": self.time_limit}
        stats.milp_solves += 1
        res = milp(cc, constraints=[LinearConstraint(A, clb, cub)], integrality=self.integrality[cols],
                   bounds=Bounds(self.vlb[cols], self.vub[cols]), options=options)
        if res.status == 2:
            raise Contradiction("the releases contradict the reader facts (milp)")
        if res.status == 0:
            return res.fun, res.x, cols
        stats.milp_timeouts += 1
        bound = getattr(res, "mip_dual_bound", None)
        return (bound if bound is not None and np.isfinite(bound) else -INF), res.x, cols


def _exact_intervals(u: Union, p: _HolePropagator, pending: list[Target], time_limit: float,
                     stats: Stats) -> dict[int, tuple[float, float]]:
    """Exact (or sound) whole-number intervals of the `pending` targets; witness tables (the
    hidden figures pushed up to the threshold, then down) clear most of them first."""
    if not pending:
        return {}
    ex = _Exact(u, p.lo, p.hi, time_limit)
    T = u.threshold
    seen_lo: dict[int, float] = {}
    seen_hi: dict[int, float] = {}

    def record(x, cols):
        if x is None:
            return
        for k, j in enumerate(cols):
            j = int(j)
            if j < len(u.names):
                seen_lo[j] = min(seen_lo.get(j, INF), x[k])
                seen_hi[j] = max(seen_hi.get(j, -INF), x[k])

    by_comp = defaultdict(list)
    for t in pending:
        by_comp[ex.comp[t.var]].append(t)
    out = {}

    def cleared(t: Target) -> bool:
        whi, wlo = seen_hi.get(t.var, -INF), seen_lo.get(t.var, INF)
        return whi >= T - EPS and (t.is_sum or whi - wlo > 0.5)

    stats.by_means["pending"] = stats.by_means.get("pending", 0) + len(pending)
    for targets in by_comp.values():
        # witnesses: the hidden figures pushed up to the threshold (a few rounds, on those
        # still not cleared), then all down
        left = targets
        for _ in range(3):
            record(*ex.capped([t.var for t in left], T, stats))
            left = [t for t in left if not cleared(t)]
            if not left:
                break
        if left:
            _, x, cols = ex.solve(dict.fromkeys([t.var for t in left], 1.0), stats)
            record(x, cols)
        for t in targets:
            if cleared(t):
                continue  # two tables a reader cannot exclude: neither small nor pinned
            i = t.var
            high = None
            if seen_hi.get(i, -INF) < T - EPS:
                neg, x, cols = ex.solve({i: -1.0}, stats)
                record(x, cols)
                high = -neg
                if cleared(t):
                    continue
            low, x, cols = ex.solve({i: 1.0}, stats)
            record(x, cols)
            if cleared(t):
                continue
            if high is None:
                neg, x, cols = ex.solve({i: -1.0}, stats)
                record(x, cols)
                high = -neg
            if u.integer[i]:
                low = math.ceil(low - 1e-6) if np.isfinite(low) else low
                high = math.floor(high + 1e-6) if np.isfinite(high) else high
            out[i] = (max(low, p.lo[i]), min(high, p.hi[i]))
    return out


# -- the attack --------------------------------------------------------------------------------


def _labels(releases: list[ReleaseView], identities: dict[str, dict]) -> dict[tuple, str]:
    """identity -> the code a reader of the last release names it by: its code there, else
    `<code>@<release>` of the latest release holding it."""
    labels: dict[tuple, str] = {}
    last = releases[-1].name
    for view in releases:
        for code, zid in identities[view.name].items():
            labels[zid] = code if view.name == last else f"{code}@{view.name}"
    return labels


def attack_releases(releases: list[ReleaseView], indicators, policy, commune_changes=None, *,
                    exact: bool = True, time_limit: float = 1.0, years=None, blanks: str = "distinct",
                    workers: int = 2, excuse: bool = True) -> list[Leak]:
    """Every leak a reader of all `releases` (oldest first) proves about the figures some
    release masked and none published. `commune_changes`: old commune code -> new (a dict, or
    the DataFrame of config/commune_changes.csv). `exact=False`: propagation only (faster,
    weaker). Figures are identified across releases by the values behind them (the
    confidential tables of `releases`); the tests give it the values behind the CAF's blanks
    too (`tests.release_scenarios.fill_blanks`: the sample's truth), so that it identifies
    what really did not change. `blanks`: how a figure left without a value (no truth) is
    identified: "distinct" (the default: a blank is the same only as a blank), "unique" (it
    is the figure the other releases hold when they all hold one value: wrong, and then
    contradictory, when the CAF changed a blanked figure), "never" (a blank is an unknown
    of its own release). `excuse`: leave out a leak the releases before the
    last alone give (`_Before`: counted in `LAST.known_before`); the leaks of the last release
    then. Statistics of the run in `tests.attacker_releases.LAST`."""
    started = time.perf_counter()
    stats = Stats()
    changes = _changes(commune_changes)
    identities = {view.name: zone_identities(view, changes) for view in releases}
    if len(identities) != len(releases):
        raise ValueError("two releases share a name")
    labels = _labels(releases, identities)
    all_years = sorted({int(y) for view in releases for y in view.published["year"].unique()})
    todo = all_years if years is None else list(years)
    args = (releases, indicators, policy, identities, labels, exact, time_limit, blanks, excuse)
    leaks: list[Leak] = []
    if workers > 1 and len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(workers, len(todo)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_attack_year, [(year, *args) for year in todo]))
    else:
        results = [_attack_year((year, *args)) for year in todo]
    for found, part in results:
        leaks += found
        for f in dataclasses.fields(Stats):
            if f.name in ("seconds", "by_means"):
                continue
            setattr(stats, f.name, getattr(stats, f.name) + getattr(part, f.name))
        for k, v in part.by_means.items():
            stats.by_means[k] = stats.by_means.get(k, 0) + v
    stats.seconds = time.perf_counter() - started
    LAST.__dict__.update(stats.__dict__)
    return leaks


def _attack_year(job) -> tuple[list[Leak], Stats]:
    """One year of the union: propagation, then whole numbers; the leaks and the statistics."""
    year, releases, indicators, policy, identities, labels, exact, time_limit, blanks, excuse = job
    stats = Stats()
    leaks: list[Leak] = []
    u = Union(releases, year, indicators, policy, identities, labels, blanks)
    if not u.names:
        return leaks, stats
    stats.variables += len(u.names)
    stats.constraints += len(u.cons)
    stats.targets += sum(1 for t in u.targets if not t.is_sum)
    stats.sums += sum(1 for t in u.targets if t.is_sum)
    stats.rate_targets += len(u.rate_targets)
    stats.linked += u.linked
    stats.corrected += u.corrected
    truth = _Truth(u)
    p = _propagate(u)
    for i in range(len(u.names)):  # every derived interval, not only the targets'
        truth.check(i, p.lo[i], p.hi[i], f"propagation: {year} {u.names[i]}")
    intervals = {t.var: (p.lo[t.var], p.hi[t.var]) for t in u.targets}
    if exact:
        pending = [t for t in u.targets if not u.leak_of(t, *intervals[t.var])
                   and not (-EPS <= p.lo[t.var] and p.hi[t.var] <= EPS)]  # proven 0: no leak
        intervals.update(_exact_intervals(u, p, pending, time_limit, stats))
    before = _Before(releases[:-1], year, indicators, policy, identities, labels, blanks) if excuse else None
    for t in u.targets:
        leak = target_leak(u, t, *intervals[t.var], truth, "releases")
        if leak is not None and before is not None and before.gives(u, t, leak.problem):
            stats.known_before += 1
            continue
        if leak is not None:
            leaks.append(leak)
    for k, r in enumerate(u.rate_targets):
        low, high = _rate_bounds(r, p.lo, p.hi)
        if low is None:
            continue  # the rate may not exist
        leak = rate_leak(r, low, high, u.rate_steps[k], truth, "releases")
        if leak is not None and before is not None and before.gives_rate(u, r, u.rate_steps[k]):
            stats.known_before += 1
            continue
        if leak is not None:
            leaks.append(leak)
    return leaks, stats


def _rate_bounds(r: RateTarget, lo, hi) -> tuple[float | None, float | None]:
    if lo[r.den] < 1:
        return None, None
    low = r.mult * lo[r.num] / hi[r.den] if hi[r.den] < INF else 0.0
    return low, r.mult * hi[r.num] / lo[r.den]


# A leak is excused only on what the earlier releases are proven to give: their programme is
# solved to the end (a solve cut by the time limit gives looser bounds, and a leak the earlier
# releases already gave would be reported as the last release's; seen under load, at 1 s).
EXCUSE_TIME_LIMIT = 60.0


class _Before:
    """What the earlier releases alone prove (propagation), to leave out of the leaks what the
    last release adds nothing to: a figure the earlier releases already pin (e.g. the terms of
    a rate published before, 5 / 11 the only fraction with a denominator of at most 11 that
    rounds to 45.5 %, whose rate the CAF blanked at source later) is known; masking it again
    cannot be a new disclosure. The earlier releases were each judged by their own reader:
    a leak they alone give about a figure they protected is theirs, not the union's."""

    def __init__(self, earlier, year, indicators, policy, identities, labels, blanks):
        self.args = (earlier, year, indicators, policy, identities, labels, blanks)
        self.u: Union | None = None
        self.p: _HolePropagator | None = None
        self.key_of: dict[int, tuple] = {}

    def _interval(self, u: Union, g: int) -> tuple[float, float] | None:
        if self.u is None and self.args[0]:  # only a leak to excuse needs the earlier releases' system
            self.u = Union(*self.args)
            self.p = _propagate(self.u) if self.u.names else None
        if self.p is None:
            return None
        if not self.key_of:
            self.key_of = {g: k for k, g in u.index.items()}
        g0 = self.u.index.get(self.key_of.get(g))
        return None if g0 is None else (self.p.lo[g0], self.p.hi[g0])

    def gives(self, u: Union, t: Target, problem: str) -> bool:
        members = t.members if t.is_sum else (t.var,)
        bounds = [self._interval(u, g) for g in members]
        if any(b is None for b in bounds):
            return False
        low, high = sum(b[0] for b in bounds), sum(b[1] for b in bounds)
        if t.is_sum:  # the same sum, as the earlier releases bound it
            low, high = self._sum_interval([self.u.index[self.key_of[g]] for g in members])
        elif u.leak_of(t, low, high) != problem:  # propagation reads one row at a time: the programme
            g0 = self.u.index[self.key_of[t.var]]
            target = Target(g0, 0, "a figure before", set(), False, ("figure", "before"))
            low, high = _exact_intervals(self.u, self.p, [target], EXCUSE_TIME_LIMIT, Stats()).get(g0, (low, high))
        return u.leak_of(t, low, high) == problem

    def _sum_interval(self, members: list[int]) -> tuple[float, float]:
        """The earlier releases' bounds on a sum of their figures: a sum of theirs if they hide
        the same figures under one zone, else a sum variable added to a copy of their system
        (a + c under R1 is at most 6 when a + b + c is)"""
        same = self._sums().get(frozenset(members))
        if same is not None:
            return self.p.lo[same], self.p.hi[same]
        u = copy.deepcopy(self.u)
        g = len(u.names)
        u.names.append(("sum", "before", 0, "sum"))
        u.lo.append(-INF)
        u.hi.append(INF)
        u.integer.append(all(u.integer[m] for m in members))
        u.hole.append(0)
        u.truth.append(None)
        u._eq({g: 1.0, **{m: -1.0 for m in members}}, 0.0)
        p = _propagate(u)
        target = Target(g, 0, "a sum before", set(), True, ("sum", "before"), tuple(members))
        # bounds propagation reads one row at a time: a + c <= 6 from a + b + c <= 6 needs the programme
        return _exact_intervals(u, p, [target], EXCUSE_TIME_LIMIT, Stats()).get(g, (p.lo[g], p.hi[g]))

    def _sums(self) -> dict[frozenset, int]:
        if not hasattr(self, "_by_members"):  # earlier variables summed -> the sum's variable
            self._by_members = {frozenset(t.members): t.var for t in self.u.targets if t.is_sum}
        return self._by_members

    def gives_rate(self, u: Union, r: RateTarget, step: float) -> bool:
        num, den = self._interval(u, r.num), self._interval(u, r.den)
        if num is None or den is None:
            return False
        low, high = _rate_bounds(r, {r.num: num[0], r.den: den[0]}, {r.num: num[1], r.den: den[1]})
        return low is not None and high - low < step - 1e-9
