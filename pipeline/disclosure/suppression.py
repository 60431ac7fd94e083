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

Decomposition: the relations (commune -> RPE -> EPCI additivity), the rate links and
the inequalities never leave one zone tree of one year, so the programme splits into
independent sub-problems, one per (year, top-level zone: the EPCI, or whatever has no
parent in the referential). Each is solved and audited on its own, with its own rounds
(only the sub-problems with findings are solved again); a sub-problem with nothing
masked at source, no primary cell and nothing unavailable is trivially safe (publish
everything) and skipped. Sub-problems are independent, so they may be solved in
parallel worker processes, grouped by department (`workers`); the result is the same.
On a one-EPCI referential (the CABBALR) each year is one sub-problem, as before.

What does not: reading or writing the warehouse (`pipeline.defs.disclosure`), deciding
whether the published table is safe (the audit).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.disclosure import memo as records
from pipeline.disclosure.audit import INTERVAL_COLUMNS, AuditResult, Finding, audit_table, merge_results
from pipeline.disclosure.history import History
from pipeline.disclosure.policy import Policy
from pipeline.disclosure.programme import (  # noqa: F401 (MaskingError: this module's interface too)
    FREE,
    KEYS,
    PRIMARY,
    PROTECTED,
    SECRET,
    UNAVAILABLE,
    Hierarchy,
    MaskingError,
    cut,
    floor_of,
    inequality_pairs,
    solve,
    year_problem,
    zero_rates,
)
from pipeline.disclosure.reader import ReaderModel
from pipeline.frames import as_text
from pipeline.indicators import IndicatorSet
from pipeline.tables import PUBLISHED_TABLE, column_names
from pipeline.territory import departement_of

# the published table's columns (config/tables.yaml) but the study's id, which out_indicators adds
PUBLISHED_COLUMNS = [c for c in column_names(PUBLISHED_TABLE) if c != "study_id"]
# Below this many cells to solve, sub-problems are solved in this process (no pool).
PARALLEL_MIN_CELLS = 4_000  # the audit's whole-number questions make a sub-problem of the sample cost seconds


@dataclass
class MaskingResult:
    published: pd.DataFrame  # PUBLISHED_COLUMNS
    log: pd.DataFrame  # one row per masked cell: keys, reason, rule, protects, low, high
    audit: AuditResult
    rounds: int  # the most rounds any sub-problem needed
    counts: dict[str, int] = field(default_factory=dict)
    subproblems: dict[str, int] = field(default_factory=dict)  # total, solved, reused, trivially_safe, forced, workers
    # every sub-problem's outcome as a record, for the next run's `memo`: fingerprint -> (year, root, record)
    records: dict[str, tuple[int, str, str]] = field(default_factory=dict)


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
    # on positions and whole columns, not groupby and .loc by label: each indicator's rows
    # are a mask (a single table's masking spent more in pandas' per-call costs than in rules)
    rule = np.full(len(frame), None, dtype=object)
    indicator = frame["indicator"]
    for ind in indicator.dropna().unique():  # as groupby: missing indicators have no rule
        rows = (indicator == ind).to_numpy()
        spec = policy.of(str(ind))
        if spec.sensitive:
            hit = np.zeros(len(frame), dtype=bool)
            for contributor in spec.contributors:
                hit |= small(figures[contributor]).to_numpy(dtype=bool)
            name = "count_below_threshold" if kinds[ind] == "count" else "rate_term_below_threshold"
            rule[rows & hit] = name
        if spec.subpopulation:
            size = frame["value" if kinds[ind] == "count" else "denominator"]
            rule[rows & (size < policy.minimum_allocataires).to_numpy(dtype=bool)] = "subpopulation_below_minimum"
    infra = frame["level"].isin(infra_communal_levels)
    too_few = ~(frame["allocataires"] >= policy.minimum_allocataires)  # unknown counts as too few
    rule[(infra & too_few).to_numpy(dtype=bool)] = "infra_communal_zone_below_minimum"
    return pd.Series(rule, index=frame.index, dtype="object").where(frame["status"] == "ok")


def _states(frame: pd.DataFrame, rules: pd.Series) -> pd.Series:
    status = frame["status"].to_numpy()
    state = np.full(len(frame), FREE, dtype=object)
    state[rules.notna().to_numpy()] = PRIMARY
    state[status == "secret_at_source"] = SECRET
    state[status == "not_available"] = UNAVAILABLE
    return pd.Series(state, index=frame.index, dtype="object")


def _published_frame(frame: pd.DataFrame, masked: pd.Series | np.ndarray, kinds: dict[str, str], policy: Policy,
                     base: pd.DataFrame | None = None,
                     zero_rates: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """The published table of `frame` with `masked` cells blanked (rates rounded).
    `base`: `_published_frame(frame, no cell masked, ...)`, to reuse round after round.
    `zero_rates` (`zero_rates`): rates without a denominator, shown masked unless their
    denominator is published (the legend: a masked rate may not exist)."""
    if base is None:
        base = _unmasked_frame(frame, kinds, policy)
    # on arrays, not with .loc / .where: a single table's masking builds this frame every
    # round, where pandas' per-call overhead cost more than the rest of the frame's work
    status = base["status"].to_numpy(copy=True)
    hidden = np.asarray(masked, dtype=bool) & (status != "not_available")
    status[hidden] = "masked"
    if zero_rates is not None and len(zero_rates[0]):
        rates, dens = zero_rates
        den_shown = np.where(dens >= 0, status[np.maximum(dens, 0)] == "published", False)
        status[rates[~den_shown]] = "masked"
    out = base.copy()
    out["status"] = status
    out["value"] = _kept(out["value"], status == "published")
    return out


def _unmasked_frame(frame: pd.DataFrame, kinds: dict[str, str], policy: Policy) -> pd.DataFrame:
    """The published table of `frame` with nothing masked (rates rounded)."""
    is_rate = np.array([kinds.get(i) == "ratio" for i in frame["indicator"]], dtype=bool)
    value = frame["value"]
    columns = {c: frame[c].array for c in ("level", "zone_code", "zone_name", "parent_code", "indicator", "year")}
    columns["value"] = (value if not is_rate.any() else value.where(~is_rate, value.round(policy.rate_decimals))).array
    columns["status"] = np.where(frame["status"].to_numpy() == "not_available", "not_available",
                                 "published").astype(object)
    return pd.DataFrame({c: columns[c] for c in PUBLISHED_COLUMNS})  # copies the arrays


def _kept(values: pd.Series, shown: np.ndarray) -> pd.Series:
    """`values.where(shown)` (missing where not shown), on the array when it is float."""
    if values.dtype == np.float64:
        return pd.Series(np.where(shown, values.to_numpy(), np.nan), index=values.index, name=values.name)
    return values.where(shown)


@dataclass
class _Outcome:
    """What solving one sub-problem gives back (positions are within the sub-problem)."""

    key: tuple[int, str]
    masked: np.ndarray  # positions masked (x = 1)
    rounds: int
    audit: AuditResult  # the last (clean) single-cell audit of the sub-problem
    protects: dict[int, str]  # secondary positions -> the masked cells they shield
    forced: int = 0  # findings answered by forced cuts (`forced_cuts_from`)


def sharp_cuts_from(policy: Policy) -> int:
    """The round from which a sub-problem whose plain cuts have not converged gets sharp
    cuts: a quarter of the policy's rounds (15 of 60)."""
    return max(1, policy.max_rounds // 4)


def forced_cuts_from(policy: Policy) -> int:
    """The round from which a sub-problem still not converged masks every cell of a cut
    at once instead of one more (30 of 60): more cells, far fewer rounds. At the last
    round but one, every publishable cell of a finding's indicator group in the tree is
    masked, and every cell masked then stays masked: with nothing of those groups
    published, nothing of them can be recomputed, and the other groups keep the pattern
    their audit found clean (the programme separates by group, and adding cells only
    costs more), so the masking always ends (the audit still checks it)."""
    return max(1, policy.max_rounds // 2)


def _solve_subproblem(key: tuple[int, str], cells: pd.DataFrame, zones: pd.DataFrame,
                      indicators: IndicatorSet, policy: Policy, sharp_from: int | None = None,
                      earlier: _Earlier | None = None) -> _Outcome:
    """Solve, audit, cut, solve again... until the audit of this sub-problem is clean.

    `cells` are the rows of one year and one zone tree (with `state`), `zones` the zones
    of that tree: the audit sees them alone, which is exact since nothing relates them
    to any other cell. From round `sharp_from` (default `sharp_cuts_from(policy)`) the
    cuts are sharp (`cut`). `earlier`: what the study's earlier releases published of this
    part: the audit reads them beside it, and the programme knows what they made known.
    """
    kinds = {i.id: i.kind for i in indicators.indicators}
    problem = year_problem(cells, Hierarchy(zones), key[1], indicators, policy)
    state = problem.cells["state"].to_numpy()
    sharp_from = sharp_cuts_from(policy) if sharp_from is None else sharp_from
    forced_from, forced = forced_cuts_from(policy), 0
    indicator_of = problem.cells["indicator"].to_numpy()
    value = problem.cells["value"].to_numpy()
    facts = {"pairs": inequality_pairs(problem, policy), "value": value, "indicator": indicator_of,
             "capacity": np.nan_to_num(value.astype(float)) - floor_of(problem, policy),
             "threshold": policy.threshold}
    public = np.array([not policy.of(str(i)).sensitive for i in indicator_of], dtype=bool)
    groups = ReaderModel(indicators, policy).indicator_groups()
    group_of = np.array([groups.get(str(i), str(i)) for i in indicator_of], dtype=object)
    group_rows = {g: np.flatnonzero(group_of == g) for g in dict.fromkeys(group_of)}
    problem.groups = group_of
    if earlier is not None:
        problem.known_before, problem.masked_before = earlier.known, earlier.masked
    known_before = np.zeros(len(state), dtype=bool) if earlier is None else earlier.known
    level_of = dict(zip(zones["zone_code"], zones["level"]))
    prior = {g: ({key[0]: [dataclasses.replace(o, table=o.table[o.table["indicator"].isin(set(indicator_of[rows]))])
                           for o in earlier.observations]} if earlier is not None else None)
             for g, rows in group_rows.items()}
    audits: dict[str, tuple[bytes, AuditResult]] = {}  # group -> (its masked cells, its audit)
    quick: dict[str, tuple[bytes, AuditResult]] = {}  # the same, by the relaxed reader
    unmasked = _published_frame(problem.cells, np.zeros(len(state), dtype=bool), kinds, policy)
    # the published frame of a round: the base with the round's mask, rates without a denominator hidden
    def published_as(mask_: pd.Series) -> pd.DataFrame:
        return _published_frame(problem.cells, mask_, kinds, policy, unmasked, problem.zero_rates)

    def answer(findings: list, round_: int) -> tuple[int, list]:
        """Add the cuts the findings ask for: (how many were answered, those no publishable
        cell can answer)."""
        nonlocal forced
        cuts, stuck = 0, []
        for finding in findings:
            if finding.problem == "inconsistent":
                raise MaskingError(f"the published figures contradict each other: {finding.describe()}")
            if earlier is not None:  # about a zone of an earlier release: the cells of today's that cover it
                finding = _today(finding, problem, earlier.related, level_of)
            if round_ >= policy.max_rounds - 1:  # last resort: the finding's whole indicator group
                groups_found = [group_of[problem.position[c]] for c in finding.cells]
                problem.cuts.extend([c] for c in np.flatnonzero((state == FREE) & ~known_before
                                                                 & np.isin(group_of, groups_found)))
                forced += 1
                cuts += 1
                continue
            sharp = round_ >= sharp_from
            usable = (x == 0) & (state == FREE) & ~known_before  # a figure published before protects nothing
            if sharp:
                # a public (non-sensitive) indicator is tied to no other by any relation,
                # rate or inequality: its cells never shield another indicator's (and a
                # masked small public figure would itself be a finding)
                own = sorted({indicator for _level, _zone, indicator in finding.cells})
                usable &= ~public | np.isin(indicator_of, own)
            candidates = cut(problem, finding, x, state, usable, facts, sharp)
            if not candidates:  # nothing left around it: widen to the whole sub-problem
                candidates = np.flatnonzero(usable).tolist()
            if not candidates:
                stuck.append(finding)
                continue
            cuts += 1
            if round_ >= forced_from:
                problem.cuts.extend([c] for c in candidates)
                forced += 1
            else:
                problem.cuts.append(candidates)
        return cuts, stuck

    x = solve(problem, policy)
    for round_ in range(1, policy.max_rounds + 1):
        masked = pd.Series(x.astype(bool) | np.isin(state, (PRIMARY, SECRET)))
        published = published_as(masked)
        # Steer with the single-cell audit; the asset check confirms with sums as well.
        # the quick reader (real numbers) first; the real one (whole numbers where it matters) once it is clean
        audit = _audit_by_group(published, masked.to_numpy(), group_rows, quick, zones, indicators, policy, kinds,
                                relaxed=True, prior=prior)
        relaxed = bool(audit.findings)
        if not audit.findings:
            audit = _audit_by_group(published, masked.to_numpy(), group_rows, audits, zones, indicators, policy,
                                    kinds, prior=prior)
        if not audit.findings:
            break
        cuts, stuck = answer(audit.findings, round_)
        if stuck and not relaxed:
            raise MaskingError(f"no publishable cell left to protect {stuck[0].describe()}")
        if stuck and not cuts:
            # the quick reader's findings that no cell can answer: the real reader judges
            # them (beside figures published before, the real-number reader may pin what the
            # whole-number one finds the earlier releases alone already give)
            audit = _audit_by_group(published, masked.to_numpy(), group_rows, audits, zones, indicators, policy,
                                    kinds, prior=prior)
            if not audit.findings:
                break
            cuts, stuck = answer(audit.findings, round_)
            if stuck:
                raise MaskingError(f"no publishable cell left to protect {stuck[0].describe()}")
        if round_ >= policy.max_rounds - 1:
            # and what is masked stays masked: the groups without findings keep their pattern
            problem.cuts.extend([c] for c in np.flatnonzero(x == 1))
        x = solve(problem, policy)
    else:
        raise MaskingError(
            f"the audit still finds {len(audit.findings)} problem(s) after {policy.max_rounds} rounds: "
            + "; ".join(f.describe() for f in audit.findings[:5])
        )
    masked_positions = np.flatnonzero(masked.to_numpy())
    protects = {}
    names = [f"{i} {lv} {z}" for i, lv, z in zip(indicator_of, problem.cells["level"], problem.cells["zone_code"])]
    status = problem.cells["status"].to_numpy()
    for pos in masked_positions:
        if state[pos] == FREE and status[pos] != "not_available":
            shielded = [names[p] for p in sorted(problem.neighbours(pos, same_zone=False))
                        if state[p] in (PRIMARY, SECRET)]
            protects[int(pos)] = "; ".join(shielded)
    return _Outcome(key, masked_positions, round_, audit, protects, forced)


def _audit_by_group(published: pd.DataFrame, masked: np.ndarray, group_rows: dict[str, np.ndarray],
                    audits: dict[str, tuple[bytes, AuditResult]], zones: pd.DataFrame,
                    indicators: IndicatorSet, policy: Policy, kinds: dict[str, str],
                    relaxed: bool = False, prior: dict | None = None) -> AuditResult:
    """The single-cell audit of a sub-problem, group by group (`ReaderModel.indicator_groups`),
    auditing again only the groups whose masked cells changed since their last audit:
    the findings and intervals are those of one audit of the whole, in its order."""
    for group, rows in group_rows.items():
        pattern = masked[rows].tobytes()
        if group not in audits or audits[group][0] != pattern:
            if not masked[rows].any():  # nothing masked: nothing to recompute, nothing to audit
                audits[group] = (pattern, AuditResult())
            else:
                audits[group] = (pattern, audit_table(published.iloc[rows], zones, indicators, policy, sums=False,
                                                      relaxed=relaxed, prior=(prior or {}).get(group)))
    merged = merge_results([a for _p, a in audits.values()])
    # audit_published lists the masked counts first, then the masked rates, each by cell
    merged.findings.sort(key=lambda f: (kinds.get(f.cells[0][2]) == "ratio", f.cells[0]) if f.cells else (False, ()))
    return merged


def _solve_batch(batch: list[tuple[tuple[int, str], pd.DataFrame, pd.DataFrame, _Earlier | None]],
                 indicators: IndicatorSet, policy: Policy, sharp_from: int | None = None) -> list[_Outcome]:
    """Solve several independent sub-problems (one task of a worker process)."""
    return [_solve_subproblem(key, cells, zones, indicators, policy, sharp_from, earlier)
            for key, cells, zones, earlier in batch]


@dataclass(frozen=True)
class _Earlier:
    """What the earlier releases say of one sub-problem: their observations of its year and
    trees, the zones of today's covering theirs (`History.related`), and per cell whether it
    is known or was masked before (`History.before`). Only this part's share travels to a
    worker process, not the whole history."""

    observations: list
    related: dict[str, list[str]]
    known: np.ndarray
    masked: np.ndarray


def _today(finding: Finding, problem, related: dict[str, list[str]], level_of: dict[str, str]) -> Finding:
    """A finding about a zone of an earlier release (`<code>@<release>`), stated on the
    cells of today's zones that cover some of it: the cells a cut can mask."""
    cells = []
    for level, zone, indicator in finding.cells:
        if (level, zone, indicator) in problem.position:
            cells.append((level, zone, indicator))
            continue
        for code in related.get(zone.split("@", 1)[0] if zone not in related else zone, ()):
            cell = (level_of.get(code), code, indicator)
            if cell in problem.position:
                cells.append(cell)
    return dataclasses.replace(finding, cells=tuple(dict.fromkeys(cells)))


@dataclass(frozen=True)
class Subproblem:
    """One independent piece of the masking problem: a year and a top-level zone tree."""

    year: int
    root: str  # the top-level zone (the EPCI)
    partition: str  # the department of its first commune: how work is grouped
    rows: np.ndarray  # positions in the confidential frame
    trivially_safe: bool  # nothing masked at source, no primary cell, nothing unavailable


def decompose(frame: pd.DataFrame, zones: pd.DataFrame, state: pd.Series | None = None,
              history: History | None = None) -> list[Subproblem]:
    """The independent sub-problems of `frame` (confidential.indicators, positional
    index): one per year and top-level zone of `zones`, sorted by (year, root).

    Every relation the masking and the audit know (a zone and its children, a rate and
    its terms, the inequalities between indicators of one zone) stays inside one of
    them. `state` (the cells' masking states) tells the trivially safe ones; without it
    none is. `history`: the earlier releases; trees one of their zones ties together are
    one sub-problem, and none is trivially safe where a release published something of it.
    """
    tree = Hierarchy(zones)
    group = (lambda root: root) if history is None else history.group
    roots = frame["zone_code"].map({c: group(tree.root_of(c)) for c in frame["zone_code"].unique()}).to_numpy()
    first_commune: dict[str, str] = {}
    for code, level in zip(zones["zone_code"], zones["level"]):
        if level == "commune":
            first_commune.setdefault(group(tree.root_of(code)), code)
    free = None if state is None else (state.to_numpy() == FREE)
    groups = (pd.DataFrame({"year": frame["year"].to_numpy(), "root": roots})
              .groupby(["year", "root"], sort=True).indices)
    out = []
    for (year, root), rows in sorted(groups.items()):
        rows = np.sort(rows)
        out.append(Subproblem(
            year=int(year), root=str(root), partition=departement_of(first_commune.get(root, root)),
            rows=rows, trivially_safe=bool(free is not None and free[rows].all()
                                           and (history is None or not history.observations(int(year), str(root)))),
        ))
    return out


def mask(
    confidential: pd.DataFrame,
    zones: pd.DataFrame,
    indicators: IndicatorSet,
    policy: Policy,
    infra_communal_levels: frozenset[str] = frozenset(),
    *,
    workers: int | None = None,
    sharp_cuts_from_round: int | None = None,
    memo: Mapping[str, str] | None = None,
    history: History | None = None,
) -> MaskingResult:
    """Decide what `confidential` (confidential.indicators) may publish; audit it.

    The work is split into independent sub-problems (`decompose`); `workers` > 1 solves
    them in that many processes, grouped by department (by department and year when there
    are fewer departments than workers); None: one per core when there are at least
    `PARALLEL_MIN_CELLS` cells to solve, else none. The result does not depend on it.
    `sharp_cuts_from_round`: from which audit round a sub-problem gets
    sharp cuts (default `sharp_cuts_from(policy)`; 1: always).
    `memo`: the `records` of an earlier result (fingerprint -> record): a sub-problem whose
    fingerprint is there (same cells in the same order, same zones, policy, indicators,
    options and code: `pipeline.disclosure.memo`) takes its outcome from it, unsolved;
    the result is the same as solving it again, as solving is deterministic.
    `history`: the study's earlier releases (`pipeline.disclosure.history`): the table is
    protected against a reader who holds them all (every sub-problem audited against the
    union; what they published is known, what they masked is masked again where it can be).
    """
    if history is not None and not history.releases:
        history = None
    frame = as_text(confidential.reset_index(drop=True))  # text read compactly: plain text cells again
    rules = primary_rules(frame, policy, indicators, infra_communal_levels)
    frame["state"] = _states(frame, rules)
    kinds = {i.id: i.kind for i in indicators.indicators}
    subproblems = decompose(frame, zones, frame["state"], history)
    to_solve = [sp for sp in subproblems if not sp.trivially_safe]

    tree = Hierarchy(zones)
    group = (lambda root: root) if history is None else history.group
    zone_roots = np.array([group(tree.root_of(c)) for c in zones["zone_code"]], dtype=object)
    zone_rows = pd.Series(zone_roots).groupby(zone_roots, sort=False).indices
    zones_of = {root: zones.iloc[rows] for root, rows in zone_rows.items()}
    empty_zones = zones.iloc[0:0]
    columns = [c for c in frame.columns]
    fingerprint_of = _fingerprints(frame[columns], zones, zone_rows, to_solve, indicators, policy,
                                   sharp_cuts_from_round, history)
    if history is not None:
        measures = {i.id: (i.measure,) if i.kind == "count" else (i.numerator, i.denominator)
                    for i in indicators.indicators}
        known, masked_before = history.before(frame, kinds, measures)
    reused = {}
    for sp in to_solve:
        found = _outcome_from((memo or {}).get(fingerprint_of[sp.year, sp.root]), (sp.year, sp.root))
        if found is not None:
            reused[sp.year, sp.root] = found
    to_solve = [sp for sp in to_solve if (sp.year, sp.root) not in reused]
    n_cells = sum(len(sp.rows) for sp in to_solve)
    departments = {sp.partition for sp in to_solve}
    if workers is None:
        workers = min(os.cpu_count() or 1, len(to_solve)) if n_cells >= PARALLEL_MIN_CELLS else 1
    # work handed out a department at a time, or a department's year at a time when there
    # are fewer departments than workers (one EPCI: its years side by side)
    by_partition: dict[object, list[Subproblem]] = defaultdict(list)
    for sp in to_solve:
        by_partition[sp.partition if len(departments) >= workers else (sp.partition, sp.year)].append(sp)

    def batches():
        """The sub-problems' cells, one department at a time: made when handed out, so that
        a national table is not copied whole into sub-problems before any is solved."""
        for sps in by_partition.values():
            yield [((sp.year, sp.root), frame.iloc[sp.rows][columns], zones_of.get(sp.root, empty_zones),
                    None if history is None else _Earlier(history.observations(sp.year, sp.root), history.related,
                                                          known[sp.rows], masked_before[sp.rows]))
                   for sp in sps]

    workers = max(1, min(workers, len(by_partition) or 1))
    outcomes: list[_Outcome] = []
    if workers == 1:
        for batch in batches():
            outcomes += _solve_batch(batch, indicators, policy, sharp_cuts_from_round)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            pending: set = set()
            for batch in batches():
                if len(pending) >= 2 * workers:  # a few departments queued per worker, not all of them
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    outcomes += [o for future in done for o in future.result()]
                pending.add(pool.submit(_solve_batch, batch, indicators, policy, sharp_cuts_from_round))
            outcomes += [o for future in pending for o in future.result()]
    outcomes = sorted([*outcomes, *reused.values()], key=lambda o: o.key)

    rows_of = {(sp.year, sp.root): sp.rows for sp in subproblems}
    masked_array = frame["state"].isin([PRIMARY, SECRET]).to_numpy().copy()
    protects: dict[int, str] = {}
    for outcome in outcomes:
        rows = rows_of[outcome.key]
        masked_array[rows[outcome.masked]] = True
        protects.update({int(rows[pos]): text for pos, text in outcome.protects.items()})
    masked = pd.Series(masked_array, index=frame.index)
    published = _published_frame(frame, masked, kinds, policy, zero_rates=zero_rates(frame, indicators))
    audit = merge_results([o.audit for o in outcomes])
    log = _masking_log(frame, rules, pd.Series(published["status"].eq("masked").to_numpy(), index=frame.index),
                       protects, audit)
    counts = {
        "cells": len(frame),
        "published": int((published["status"] == "published").sum()),
        "masked": int((published["status"] == "masked").sum()),
        "not_available": int((published["status"] == "not_available").sum()),
        "primary": int((frame["state"] == PRIMARY).sum()),
        "secret_at_source": int((frame["state"] == SECRET).sum()),
        "secondary": int((masked & (frame["state"] == FREE)).sum()),
    }
    rounds = max((o.rounds for o in outcomes), default=1)
    info = {"total": len(subproblems), "solved": len(to_solve), "reused": len(reused),
            "trivially_safe": len(subproblems) - len(to_solve) - len(reused),
            "forced": sum(1 for o in outcomes if o.forced), "workers": workers}
    kept = {fingerprint_of[o.key]: (o.key[0], o.key[1], _outcome_record(o)) for o in outcomes}
    return MaskingResult(published, log, audit, rounds, counts, info, kept)


def _fingerprints(cells: pd.DataFrame, zones: pd.DataFrame, zone_rows: dict, parts: list[Subproblem],
                  indicators: IndicatorSet, policy: Policy, sharp_from: int | None,
                  history: History | None = None) -> dict[tuple[int, str], str]:
    """Each sub-problem's fingerprint (`pipeline.disclosure.memo`): its cells as it is
    given them, its zones, what the earlier releases published of it, and what else its
    outcome depends on."""
    none = np.zeros(0, dtype=np.int64)
    extras = None if history is None else [history.digest(sp.year, sp.root) for sp in parts]
    found = records.part_fingerprints(cells, zones, [(sp.rows, zone_rows.get(sp.root, none)) for sp in parts],
                                      policy, indicators, "mask", sharp_from, extras=extras)
    return {(sp.year, sp.root): f for sp, f in zip(parts, found)}


def _outcome_record(outcome: _Outcome) -> str:
    audit = outcome.audit
    return records.dumps({
        "masked": [int(p) for p in outcome.masked], "rounds": outcome.rounds, "forced": outcome.forced,
        "protects": {str(k): v for k, v in outcome.protects.items()},
        "intervals": records.intervals_to_rows(audit.intervals[INTERVAL_COLUMNS]) if len(audit.intervals) else [],
        "counts": [audit.cells_checked, audit.groups_checked, audit.linear_programmes],
    })


def _outcome_from(text: str | None, key: tuple[int, str]) -> _Outcome | None:
    """The outcome a record keeps (its audit was clean: only clean outcomes are kept), or
    None when there is none or it cannot be read (then the sub-problem is solved)."""
    if text is None:
        return None
    try:
        record = records.loads(text)
        cells, groups, solves = record["counts"]
        audit = AuditResult(intervals=records.intervals_from_rows(record["intervals"], INTERVAL_COLUMNS),
                            cells_checked=cells, groups_checked=groups, linear_programmes=solves)
        return _Outcome(key, np.array(record["masked"], dtype=np.int64), int(record["rounds"]), audit,
                        {int(k): v for k, v in record["protects"].items()}, int(record["forced"]))
    except (ValueError, KeyError, TypeError):
        return None


def _masking_log(
    frame: pd.DataFrame,
    rules: pd.Series,
    masked: pd.Series,
    protects: dict[int, str],
    audit: AuditResult,
) -> pd.DataFrame:
    """Why each masked cell is masked, and what the audit says a reader can derive."""
    rows = frame.index[masked]
    cells = frame.loc[rows]
    state = cells["state"].to_numpy()
    reason = np.where(state == SECRET, "secret_at_source", np.where(state == PRIMARY, "primary", np.where(
        state == UNAVAILABLE, "not_available", "secondary")))
    rule = np.where(state == SECRET, "blanked by the producer",
                    np.where(state == PRIMARY, rules.loc[rows].astype(str).to_numpy(), np.where(
                        state == UNAVAILABLE, "rate with a zero denominator that is not published: shown masked",
                        "protects a masked cell of the same relation or zone")))
    shields = [protects.get(int(r), "") if s == FREE else "" for r, s in zip(rows, state)]
    log = pd.DataFrame({
        "level": cells["level"].to_numpy(), "zone_code": cells["zone_code"].to_numpy(),
        "indicator": cells["indicator"].to_numpy(), "year": [int(y) for y in cells["year"]],
        "reason": reason, "rule": rule, "protects": shields,
    }, columns=[*KEYS, "reason", "rule", "protects"])
    if len(audit.intervals) == 0:
        return log.assign(low=np.nan, high=np.nan)
    return _with_intervals(log, audit.intervals)


def _with_intervals(log: pd.DataFrame, intervals: pd.DataFrame) -> pd.DataFrame:
    """`log.merge(intervals, on=KEYS, how="left")`, by a lookup when each cell has at most one
    interval of floats (always, from the audit): a merge cost a single table's masking a
    millisecond."""
    keys = list(zip(*(intervals[k].tolist() for k in KEYS)))
    if list(intervals.columns) != [*KEYS, "low", "high"] or len(set(keys)) != len(keys) or \
            not (intervals["low"].dtype == intervals["high"].dtype == np.float64) or \
            any(pd.isna(v) for key in keys for v in key):  # a merge matches missing keys with each other
        return log.merge(intervals, on=KEYS, how="left")
    found = dict(zip(keys, zip(intervals["low"].tolist(), intervals["high"].tolist())))
    bounds = [found.get(key, (np.nan, np.nan)) for key in zip(*(log[k].tolist() for k in KEYS))]
    out = log.copy()
    out["low"] = np.array([b[0] for b in bounds], dtype=float)
    out["high"] = np.array([b[1] for b in bounds], dtype=float)
    return out
