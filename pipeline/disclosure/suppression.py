"""Primary and secondary suppression of the indicator table (convention, article 4).

What belongs here:
- the primary rules of `config/disclosure.yaml` (small counts, rates with a small
  numerator, denominator or complement, zones and sub-populations under the
  allocataires minimum; cells the producer already blanked stay masked);
- secondary suppression, year by year, as a mixed-integer programme solved by HiGHS
  (scipy.optimize.milp): one binary per publishable cell, minimising the policy's cost
  (level weight x (1 + value): small communes first, the EPCI last), under
  * no masked cell alone in an additive relation (it would be the total minus the rest),
  * the masked cells under a published total weigh at least the threshold together,
    counting the mass the producer blanked (total minus the known cells),
  * a rate is masked with its numerator or denominator, and a masked rate never stands
    beside both of them;
- rounds of "solve, audit, add a constraint": the independent audit
  (`pipeline.disclosure.audit`) checks the whole linked table (all relations at once,
  rates, inequalities); each finding adds the constraint "mask at least one more of
  the published cells around it", and the programme is solved again, until the audit
  finds nothing. The result is optimal for the constraints it ends with.

What does not: reading or writing the warehouse (`pipeline.defs.disclosure`), deciding
whether the published table is safe (the audit).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from pipeline.disclosure.audit import AuditResult, audit_published
from pipeline.disclosure.policy import Policy, linked_counts
from pipeline.indicators import IndicatorSet

FREE, PRIMARY, SECRET, UNAVAILABLE = "free", "primary", "secret_at_source", "not_available"
PROTECTED = (FREE, PRIMARY, SECRET)  # cells whose masking must hold (not those merely missing)
KEYS = ["level", "zone_code", "indicator", "year"]
PUBLISHED_COLUMNS = ["level", "zone_code", "zone_name", "parent_code", "indicator", "year", "value", "status"]


class MaskingError(RuntimeError):
    pass


@dataclass
class MaskingResult:
    published: pd.DataFrame  # PUBLISHED_COLUMNS
    log: pd.DataFrame  # one row per masked cell: keys, reason, rule, protects, low, high
    audit: AuditResult
    rounds: int
    counts: dict[str, int] = field(default_factory=dict)


def primary_rules(
    frame: pd.DataFrame, policy: Policy, indicators: IndicatorSet, infra_communal_levels: frozenset[str]
) -> pd.Series:
    """The primary rule masking each cell of `frame` (confidential.indicators), or None."""
    threshold = policy.threshold
    kinds = {i.id: i.kind for i in indicators.indicators}

    def small(series: pd.Series) -> pd.Series:
        low = 0 if not policy.zero_publishable else 1
        return series.notna() & (series >= low) & (series < threshold)

    complement = frame["denominator"] - frame["numerator"]
    figures = {"value": frame["value"], "numerator": frame["numerator"], "denominator": frame["denominator"],
               "complement": complement}
    rule = pd.Series([None] * len(frame), index=frame.index, dtype="object")
    for indicator, rows in frame.groupby("indicator").groups.items():
        spec = policy.of(str(indicator))
        if spec.sensitive:
            hit = pd.Series(False, index=rows)
            for contributor in spec.contributors:
                hit |= small(figures[contributor].loc[rows])
            name = "count_below_threshold" if kinds[indicator] == "count" else "rate_term_below_threshold"
            rule.loc[hit[hit].index] = name
        if spec.subpopulation:
            size = frame.loc[rows, "value" if kinds[indicator] == "count" else "denominator"]
            rule.loc[rows[(size < policy.minimum_allocataires).to_numpy()]] = "subpopulation_below_minimum"
    infra = frame["level"].isin(infra_communal_levels)
    too_few = ~(frame["allocataires"] >= policy.minimum_allocataires)  # unknown counts as too few
    rule.loc[infra & too_few] = "infra_communal_zone_below_minimum"
    return rule.where(frame["status"] == "ok")


def _states(frame: pd.DataFrame, rules: pd.Series) -> pd.Series:
    state = pd.Series(FREE, index=frame.index, dtype="object")
    state[rules.notna()] = PRIMARY
    state[frame["status"] == "secret_at_source"] = SECRET
    state[frame["status"] == "not_available"] = UNAVAILABLE
    return state


@dataclass
class _YearProblem:
    """Cells of one year, the relations among them, and the cuts added by the audit."""

    cells: pd.DataFrame  # rows of the year, positional index 0..n-1, with `state`
    relations: list[tuple[int, list[int]]]  # (parent position, children positions), count indicators
    ratio_links: list[tuple[int, int, int]]  # (rate, numerator, denominator) positions
    position: dict[tuple[str, str, str], int]
    cuts: list[list[int]] = field(default_factory=list)

    def neighbours(self, pos: int, same_zone: bool = True) -> set[int]:
        """Cells sharing a relation or a link with `pos` (and its zone, for the inequalities)."""
        out: set[int] = set()
        for parent, kids in self.relations:
            members = [parent, *kids]
            if pos in members:
                out.update(members)
        for rate, num, den in self.ratio_links:
            if pos in (rate, num, den):
                out.update((rate, num, den))
        if same_zone:
            level, zone = self.cells.at[pos, "level"], self.cells.at[pos, "zone_code"]
            in_zone = (self.cells["level"] == level) & (self.cells["zone_code"] == zone)
            out.update(np.flatnonzero(in_zone.to_numpy()))
        out.discard(pos)
        return out


def _year_problem(cells: pd.DataFrame, zones: pd.DataFrame, indicators: IndicatorSet) -> _YearProblem:
    cells = cells.reset_index(drop=True)
    position = {(r.level, r.zone_code, r.indicator): i for i, r in enumerate(cells.itertuples())}
    level_of = dict(zip(zones["zone_code"], zones["level"]))
    children: dict[str, list[str]] = defaultdict(list)
    for code, parent in zip(zones["zone_code"], zones["parent_code"]):
        if isinstance(parent, str):
            children[parent].append(code)
    relations = []
    for indicator in (i.id for i in indicators.indicators if i.kind == "count"):
        for parent, kids in children.items():
            p = position.get((level_of[parent], parent, indicator))
            k = [position.get((level_of[kid], kid, indicator)) for kid in kids]
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
    return _YearProblem(cells, relations, links, position)


def _floor_of(problem: _YearProblem, policy: Policy) -> np.ndarray:
    """Per cell, the largest known value of a cell that the policy's inequalities put
    below it in the same zone: a reader knows a masked cell is at least that much, so
    masking it hides only the value above that floor."""
    cells = problem.cells
    floor = np.zeros(len(cells))
    for small, large in policy.inequalities:
        for pos, (level, zone, indicator) in enumerate(zip(cells["level"], cells["zone_code"], cells["indicator"])):
            if indicator == large:
                other = problem.position.get((level, zone, small))
                if other is not None and cells.at[other, "state"] in (FREE, PRIMARY):
                    floor[pos] = max(floor[pos], float(cells.at[other, "value"]))
    return floor


def _solve(problem: _YearProblem, policy: Policy) -> np.ndarray:
    """Binary mask of the year's cells (1 = not published) at least cost."""
    cells = problem.cells
    n = len(cells)
    state = cells["state"].to_numpy()
    value = cells["value"].fillna(0).to_numpy(dtype=float)
    known = np.isin(state, (FREE, PRIMARY))
    lower = np.where(state == FREE, 0.0, 1.0)
    cost = np.array([policy.level_cost(lv) for lv in cells["level"]]) * (1 + np.abs(value))
    cost = np.where(state == FREE, cost, 0.0)
    threshold = float(policy.threshold)
    capacity = np.maximum(value - _floor_of(problem, policy), 0.0)

    rows: list[tuple[dict[int, float], float]] = []  # sum(coef * x) >= rhs
    for parent, kids in problem.relations:
        members = [parent, *kids]
        for i in members:
            if state[i] in PROTECTED:  # masked, it must not be the only unknown of the relation
                rows.append(({**{j: 1.0 for j in members if j != i}, i: -1.0}, 0.0))
        if known[parent]:
            hidden_mass = max(value[parent] - sum(value[k] for k in kids if known[k]), 0.0)
            for i in kids:
                if state[i] in PROTECTED:
                    coefs: dict[int, float] = defaultdict(float)
                    for k in kids:
                        if known[k]:
                            coefs[k] += capacity[k]
                    coefs[parent] += threshold
                    coefs[i] -= threshold
                    rows.append((dict(coefs), -hidden_mass))
    for rate, num, den in problem.ratio_links:
        rows.append(({rate: 1.0, num: -1.0}, 0.0))
        rows.append(({rate: 1.0, den: -1.0}, 0.0))
        if state[rate] in PROTECTED:
            rows.append(({num: 1.0, den: 1.0, rate: -1.0}, 0.0))
    for cut in problem.cuts:
        rows.append(({j: 1.0 for j in cut}, 1.0))

    if rows:
        r_idx, c_idx, data = [], [], []
        for r, (coefs, _rhs) in enumerate(rows):
            for c, v in coefs.items():
                r_idx.append(r), c_idx.append(c), data.append(v)
        matrix = coo_matrix((data, (r_idx, c_idx)), shape=(len(rows), n)).tocsr()
        constraints = [LinearConstraint(matrix, np.array([rhs for _c, rhs in rows]), np.inf)]
    else:
        constraints = []
    result = milp(
        c=cost, integrality=np.ones(n), bounds=Bounds(lower, np.ones(n)), constraints=constraints,
        options={"disp": False, "mip_rel_gap": 0.0},
    )
    if result.status != 0 or result.x is None:
        raise MaskingError(f"the suppression programme has no solution ({result.message})")
    return np.round(result.x).astype(int)


def _published_frame(frame: pd.DataFrame, masked: pd.Series, kinds: dict[str, str], policy: Policy) -> pd.DataFrame:
    out = frame[["level", "zone_code", "zone_name", "parent_code", "indicator", "year"]].copy()
    is_rate = frame["indicator"].map(kinds).eq("ratio")
    value = frame["value"].where(~is_rate, frame["value"].round(policy.rate_decimals))
    status = np.where(frame["status"] == "not_available", "not_available", np.where(masked, "masked", "published"))
    out["value"] = value.where(status == "published")
    out["status"] = status
    return out[PUBLISHED_COLUMNS].reset_index(drop=True)


def mask(
    confidential: pd.DataFrame,
    zones: pd.DataFrame,
    indicators: IndicatorSet,
    policy: Policy,
    infra_communal_levels: frozenset[str] = frozenset(),
) -> MaskingResult:
    """Decide what `confidential` (confidential.indicators) may publish; audit it."""
    frame = confidential.reset_index(drop=True).copy()
    rules = primary_rules(frame, policy, indicators, infra_communal_levels)
    frame["state"] = _states(frame, rules)
    kinds = {i.id: i.kind for i in indicators.indicators}
    problems = {int(y): _year_problem(g, zones, indicators) for y, g in frame.groupby("year")}
    row_of = {}  # (year, position) -> row of frame
    for year, problem in problems.items():
        rows = frame.index[frame["year"] == year]
        row_of.update({(year, pos): row for pos, row in enumerate(rows)})

    solutions = {year: _solve(problem, policy) for year, problem in problems.items()}
    stale = set(problems)
    findings_by_year: dict[int, list] = {}
    for round_ in range(1, policy.max_rounds + 1):
        masked = pd.Series(False, index=frame.index)
        for year, x in solutions.items():
            masked.loc[[row_of[(year, p)] for p in np.flatnonzero(x)]] = True
        masked |= frame["state"].isin([PRIMARY, SECRET])
        published = _published_frame(frame, masked, kinds, policy)
        # Steer with the single-cell audit of the years that changed; confirm with the full one.
        quick = audit_published(published[published["year"].isin(stale)], zones, indicators, policy, sums=False)
        for year in stale:
            findings_by_year[year] = [f for f in quick.findings if f.year == year]
        findings = [f for year_findings in findings_by_year.values() for f in year_findings]
        if not findings:
            break
        stale = set()
        for finding in findings:
            if finding.problem == "inconsistent":
                raise MaskingError(f"the published figures contradict each other: {finding.describe()}")
            problem = problems[finding.year]
            x = solutions[finding.year]
            around: set[int] = set()
            for level, zone, indicator in finding.cells:
                around |= problem.neighbours(problem.position[(level, zone, indicator)])
            candidates = sorted(p for p in around if x[p] == 0 and problem.cells.at[p, "state"] == FREE)
            if not candidates:  # nothing left around it: widen to the whole year
                candidates = [p for p in range(len(x)) if x[p] == 0 and problem.cells.at[p, "state"] == FREE]
            if not candidates:
                raise MaskingError(f"no publishable cell left to protect {finding.describe()}")
            problem.cuts.append(candidates)
            stale.add(finding.year)
        for year in stale:
            solutions[year] = _solve(problems[year], policy)
    else:
        raise MaskingError(
            f"the audit still finds {len(findings)} problem(s) after {policy.max_rounds} rounds: "
            + "; ".join(f.describe() for f in findings[:5])
        )

    # Intervals of every masked cell for the log; the asset check audits sums as well.
    audit = audit_published(published, zones, indicators, policy, sums=False)
    log = _masking_log(frame, rules, masked, problems, audit)
    counts = {
        "cells": len(frame),
        "published": int((published["status"] == "published").sum()),
        "masked": int((published["status"] == "masked").sum()),
        "not_available": int((published["status"] == "not_available").sum()),
        "primary": int((frame["state"] == PRIMARY).sum()),
        "secret_at_source": int((frame["state"] == SECRET).sum()),
        "secondary": int((masked & (frame["state"] == FREE)).sum()),
    }
    return MaskingResult(published, log, audit, round_, counts)


def _masking_log(
    frame: pd.DataFrame,
    rules: pd.Series,
    masked: pd.Series,
    problems: dict[int, _YearProblem],
    audit: AuditResult,
) -> pd.DataFrame:
    """Why each masked cell is masked, and what the audit says a reader can derive."""
    records = []
    for row in frame.index[masked & (frame["status"] != "not_available")]:
        cell = frame.loc[row]
        year = int(cell["year"])
        if cell["state"] == SECRET:
            reason, rule, protects = "secret_at_source", "blanked by the producer", ""
        elif cell["state"] == PRIMARY:
            reason, rule, protects = "primary", str(rules.loc[row]), ""
        else:
            problem = problems[year]
            pos = problem.position[(cell["level"], cell["zone_code"], cell["indicator"])]
            shielded = [
                problem.cells.loc[p, ["indicator", "level", "zone_code"]].tolist()
                for p in sorted(problem.neighbours(pos, same_zone=False))
                if problem.cells.at[p, "state"] in (PRIMARY, SECRET)
            ]
            reason, rule = "secondary", "protects a masked cell of the same relation or zone"
            protects = "; ".join(" ".join(map(str, s)) for s in shielded)
        records.append((cell["level"], cell["zone_code"], cell["indicator"], year, reason, rule, protects))
    log = pd.DataFrame(records, columns=["level", "zone_code", "indicator", "year", "reason", "rule", "protects"])
    return log.merge(audit.intervals, on=KEYS, how="left")
