"""Disclosure control: hand-checked patterns, properties, the audit failing on leaks, wiring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.disclosure.audit import audit_published
from pipeline.disclosure.policy import load_policy, parse_policy
from pipeline.disclosure.suppression import mask, primary_rules
from pipeline.indicators import parse_indicators

INDICATORS = parse_indicators(
    {
        "allocataires": {"source": "s", "measure": "allocataires"},
        "indicators": {
            "actifs": {"label": "a", "unit": "u", "kind": "count", "producer": "CAF", "source": "s", "years": [2020]},
            "decembre": {"label": "d", "unit": "u", "kind": "count", "producer": "CAF", "source": "s", "years": [2020]},
            "taux": {"label": "t", "unit": "%", "kind": "ratio", "producer": "CAF", "source": "s",
                     "numerator": "decembre", "denominator": "actifs", "multiplier": 100, "years": [2020]},
            "naissances": {"label": "n", "unit": "u", "kind": "count", "producer": "INSEE", "source": "i",
                           "years": [2020]},
        },
    }
)
POLICY_TEXT = """
version: test
threshold: 5
zero_publishable: true
minimum_allocataires: 100
rate_decimals: 1
protection:
  inequalities: [[decembre, actifs]]
  cost_by_level: {commune: 1, rpe: 50, epci: 100000, iris: 1}
  max_rounds: 60
indicators:
  actifs: {sensitive: true, contributors: [value]}
  decembre: {sensitive: true, contributors: [value]}
  taux: {sensitive: true, contributors: [numerator, denominator, complement]}
  naissances: {sensitive: false}
"""
POLICY = parse_policy(POLICY_TEXT)


def zones(tree: dict[str, list[str]]) -> pd.DataFrame:
    """EPCI 'E' over RPE over communes: {'R1': ['a', 'b'], ...}."""
    rows = [("epci", "E", None)]
    for rpe, communes in tree.items():
        rows.append(("rpe", rpe, "E"))
        rows += [("commune", c, rpe) for c in communes]
    frame = pd.DataFrame(rows, columns=["level", "zone_code", "parent_code"])
    frame["zone_name"] = frame["zone_code"]
    return frame


def confidential(tree: dict[str, list[str]], values: dict[str, dict[str, float]], year: int = 2020,
                 secret: set[tuple[str, str]] = frozenset()) -> pd.DataFrame:
    """confidential.indicators for the counts given per indicator and commune; zones summed."""
    z = zones(tree)
    rows = []
    for indicator, by_commune in values.items():
        total = {}
        for rpe, communes in tree.items():
            total[rpe] = sum(by_commune[c] for c in communes)
        total["E"] = sum(total[r] for r in tree)
        for zone in z.itertuples():
            value = by_commune.get(zone.zone_code, total.get(zone.zone_code))
            status = "secret_at_source" if (indicator, zone.zone_code) in secret else "ok"
            rows.append((zone.level, zone.zone_code, zone.zone_name, zone.parent_code, indicator, year,
                         value, np.nan, np.nan, 1000.0, status))
    frame = pd.DataFrame(rows, columns=["level", "zone_code", "zone_name", "parent_code", "indicator", "year",
                                        "value", "numerator", "denominator", "allocataires", "status"])
    if {"actifs", "decembre"} <= set(values):
        num = frame[frame.indicator == "decembre"].set_index(["level", "zone_code"])
        den = frame[frame.indicator == "actifs"].set_index(["level", "zone_code"])
        rate = den.copy()
        rate["indicator"] = "taux"
        rate["numerator"], rate["denominator"] = num["value"], den["value"]
        rate["value"] = 100 * num["value"] / den["value"]
        rate["status"] = np.where((num["status"] == "ok") & (den["status"] == "ok"), "ok", "secret_at_source")
        frame = pd.concat([frame, rate.reset_index()[frame.columns]], ignore_index=True)
    frame.loc[frame["value"].isna() & (frame["status"] == "ok"), "status"] = "not_available"
    frame.loc[frame["status"] != "ok", "value"] = np.where(
        frame.loc[frame["status"] != "ok", "status"] == "secret_at_source", np.nan, np.nan)
    return frame


def masked_set(result, indicator: str = "actifs") -> set[str]:
    pub = result.published
    return set(pub[(pub.indicator == indicator) & (pub.status == "masked")].zone_code)


def run(tree, values, **kw):
    frame = confidential(tree, values, **kw)
    return mask(frame, zones(tree), INDICATORS, POLICY), frame


# -- hand-checked patterns ---------------------------------------------------------------

def test_one_small_commune_takes_the_cheapest_partner():
    tree = {"R1": ["a", "b", "c"], "R2": ["d", "e"]}
    result, _ = run(tree, {"actifs": {"a": 3, "b": 20, "c": 30, "d": 40, "e": 50}})
    assert masked_set(result) == {"a", "b"}
    assert result.audit.passed


def test_two_small_communes_whose_sum_is_small_need_a_third():
    tree = {"R1": ["a", "b", "c", "d"], "R2": ["e", "f"]}
    result, _ = run(tree, {"actifs": {"a": 2, "b": 2, "c": 40, "d": 50, "e": 60, "f": 70}})
    # masking a and b alone would let anyone compute a + b = 4 from the RPE total
    assert masked_set(result) == {"a", "b", "c"}


def test_small_commune_alone_in_its_rpe_masks_the_rpe_and_a_sibling_rpe():
    tree = {"R1": ["a"], "R2": ["b", "c"], "R3": ["d", "e"]}
    result, _ = run(tree, {"actifs": {"a": 3, "b": 10, "c": 12, "d": 100, "e": 200}})
    # R1 = a: R1 goes; R1 alone under the EPCI would be the EPCI minus R2 and R3: the
    # cheaper RPE goes too, and then one of its communes (R2 = b + c).
    assert masked_set(result) == {"a", "R1", "R2", "b"}
    assert "E" not in masked_set(result)


def test_rate_beside_its_published_denominator_is_masked_with_its_numerator():
    tree = {"R1": ["a", "b", "c"], "R2": ["d", "e"]}
    values = {"actifs": {"a": 10, "b": 20, "c": 30, "d": 40, "e": 50},
              "decembre": {"a": 3, "b": 18, "c": 25, "d": 35, "e": 45}}
    result, _ = run(tree, values)
    assert "a" in masked_set(result, "decembre")
    # a published rate and a published denominator would give the numerator back
    assert "a" in masked_set(result, "taux")
    assert result.audit.passed


def test_rate_with_a_small_complement_is_masked_and_not_recomputable():
    tree = {"R1": ["a", "b", "c"], "R2": ["d", "e"]}
    values = {"actifs": {"a": 12, "b": 20, "c": 30, "d": 40, "e": 50},
              "decembre": {"a": 10, "b": 12, "c": 14, "d": 16, "e": 18}}  # a: 2 inactive in December
    result, _ = run(tree, values)
    assert "a" in masked_set(result, "taux")
    assert "a" in masked_set(result, "decembre") | masked_set(result, "actifs")
    assert result.audit.passed


def test_secret_at_source_cells_with_a_small_sum_get_protected():
    tree = {"R1": ["a", "b", "c", "d"], "R2": ["e", "f"]}
    values = {"actifs": {"a": 1, "b": 2, "c": 40, "d": 50, "e": 60, "f": 70}}
    # the producer blanked a and b, but published the RPE total: a + b = 3 is derivable
    result, _ = run(tree, values, secret={("actifs", "a"), ("actifs", "b")})
    assert masked_set(result) == {"a", "b", "c"}


def test_insee_figures_are_not_masked():
    tree = {"R1": ["a", "b"], "R2": ["c"]}
    result, _ = run(tree, {"naissances": {"a": 2, "b": 30, "c": 40}})
    assert masked_set(result, "naissances") == set()


def test_infra_communal_zone_below_100_allocataires_is_masked_whole():
    tree = {"R1": ["a", "b"], "R2": ["c", "d"]}
    frame = confidential(tree, {"naissances": {"a": 20, "b": 30, "c": 40, "d": 50}})
    z = zones(tree)
    # a made-up level under commune a: two IRIS
    iris = pd.DataFrame([("iris", "a1", "a", "a1"), ("iris", "a2", "a", "a2")],
                        columns=["level", "zone_code", "parent_code", "zone_name"])
    z = pd.concat([z, iris], ignore_index=True)
    extra = frame[frame.zone_code == "a"].copy()
    rows = []
    for code, value, alloc in (("a1", 12.0, 80.0), ("a2", 8.0, 300.0)):
        row = extra.copy()
        row[["level", "zone_code", "zone_name", "parent_code", "value", "allocataires"]] = \
            ["iris", code, code, "a", value, alloc]
        rows.append(row)
    frame = pd.concat([frame, *rows], ignore_index=True)
    result = mask(frame, z, INDICATORS, POLICY, frozenset({"iris"}))
    pub = result.published.set_index("zone_code")
    assert pub.loc["a1", "status"] == "masked"  # 80 allocataires < 100
    assert pub.loc["a2", "status"] == "masked"  # a2 = a - a1: masked to protect a1
    log = result.log.set_index("zone_code")
    assert log.loc["a1", "rule"] == "infra_communal_zone_below_minimum"
    assert log.loc["a2", "reason"] == "secondary"


# -- the audit must be able to fail ------------------------------------------------------

def published_from(frame: pd.DataFrame, masked: set[tuple[str, str]]) -> pd.DataFrame:
    """`frame` published with `masked` (indicator, zone) cells hidden, rates rounded as published."""
    out = frame[["level", "zone_code", "zone_name", "parent_code", "indicator", "year"]].copy()
    hidden = [(i, z) in masked or s != "ok" for i, z, s in zip(frame.indicator, frame.zone_code, frame.status)]
    out["status"] = np.where(hidden, "masked", "published")
    value = frame["value"].where(frame["indicator"] != "taux", frame["value"].round(POLICY.rate_decimals))
    out["value"] = value.where(~np.array(hidden))
    return out


def primary(frame: pd.DataFrame) -> set[tuple[str, str]]:
    """The cells the primary rule masks: a published table never shows them (the reader knows it)."""
    rules = primary_rules(frame, POLICY, INDICATORS, frozenset())
    return {(i, z) for i, z, r in zip(frame.indicator, frame.zone_code, rules) if r is not None}


def test_audit_catches_two_small_cells_masked_alone_under_a_published_total():
    """What tau-ARGUS-like per-cell protection gives: a=2 and b=2 masked, the RPE published."""
    tree = {"R1": ["a", "b", "c"], "R2": ["d", "e"]}
    frame = confidential(tree, {"actifs": {"a": 2, "b": 2, "c": 40, "d": 50, "e": 60}})
    audit = audit_published(published_from(frame, {("actifs", "a"), ("actifs", "b")}), zones(tree), INDICATORS, POLICY)
    assert not audit.passed
    problems = {(f.problem, f.cells) for f in audit.findings}
    assert ("below_threshold", (("commune", "a", "actifs"), ("commune", "b", "actifs"))) in problems
    assert "2" not in " ".join(f.describe() for f in audit.findings).replace("2020", "")  # no value in messages


def test_audit_catches_a_single_masked_cell():
    tree = {"R1": ["a", "b", "c"], "R2": ["d", "e"]}
    frame = confidential(tree, {"actifs": {"a": 3, "b": 20, "c": 40, "d": 50, "e": 60}})
    audit = audit_published(published_from(frame, {("actifs", "a")}), zones(tree), INDICATORS, POLICY)
    assert [f.problem for f in audit.findings] == ["pinned"]


def test_audit_catches_a_rate_recomputable_from_its_terms():
    tree = {"R1": ["a", "b", "c"], "R2": ["d", "e"]}
    values = {"actifs": {"a": 12, "b": 20, "c": 30, "d": 40, "e": 50},
              "decembre": {"a": 10, "b": 12, "c": 14, "d": 16, "e": 18}}
    frame = confidential(tree, values)
    audit = audit_published(published_from(frame, {("taux", "a")}), zones(tree), INDICATORS, POLICY)
    assert ("pinned", (("commune", "a", "taux"),)) in {(f.problem, f.cells) for f in audit.findings}


def test_audit_uses_the_inequalities():
    tree = {"R1": ["a", "b", "c"], "R2": ["d", "e"]}
    values = {"actifs": {"a": 9, "b": 20, "c": 30, "d": 40, "e": 50},
              "decembre": {"a": 6, "b": 12, "c": 14, "d": 16, "e": 18}}
    frame = confidential(tree, values)
    # actifs a and b masked (a + b = 29 known); decembre b published = 12 >= ... actifs b >= 12,
    # so actifs a <= 17; decembre a = 6 published, so actifs a >= 6: not pinned, not small.
    leaky = {("actifs", "a"), ("actifs", "b"), ("taux", "a"), ("taux", "b")}
    assert audit_published(published_from(frame, leaky), zones(tree), INDICATORS, POLICY).passed
    # with b's December figure at 27, actifs b >= 27 and a <= 2: proven small
    values["decembre"]["b"] = 27
    values["actifs"]["b"] = 27
    values["actifs"]["a"] = 2
    values["decembre"]["a"] = 1
    frame = confidential(tree, values)
    leaky |= {("decembre", "a")}
    audit = audit_published(published_from(frame, leaky), zones(tree), INDICATORS, POLICY)
    assert any(f.cells == (("commune", "a", "actifs"),) for f in audit.findings)


def test_a_masked_cell_proven_zero_is_no_finding_when_zero_is_publishable():
    """December figure of commune a masked, its active figure published at 0: the
    inequality proves it is 0, which the policy lets anyone publish."""
    tree = {"R1": ["a", "b", "c"], "R2": ["d", "e"]}
    values = {"actifs": {"a": 0, "b": 20, "c": 30, "d": 40, "e": 50},
              "decembre": {"a": 0, "b": 12, "c": 14, "d": 16, "e": 18}}
    frame = confidential(tree, values, secret={("decembre", "a"), ("taux", "a")})
    # b and c (and their rates) masked with it, so that the RPE total pins none of them
    published = published_from(frame, {("decembre", "b"), ("decembre", "c"), ("taux", "b"), ("taux", "c")})
    assert audit_published(published, zones(tree), INDICATORS, POLICY).passed
    strict = parse_policy(POLICY_TEXT.replace("zero_publishable: true", "zero_publishable: false"))
    findings = audit_published(published, zones(tree), INDICATORS, strict).findings
    assert ("pinned", (("commune", "a", "decembre"),)) in {(f.problem, f.cells) for f in findings}


# -- properties --------------------------------------------------------------------------

@st.composite
def hierarchies(draw):
    n_rpe = draw(st.integers(2, 4))
    tree, values_a, values_d = {}, {}, {}
    k = 0
    for r in range(n_rpe):
        communes = []
        for _ in range(draw(st.integers(1, 5))):
            code = f"c{k}"
            k += 1
            communes.append(code)
            actifs = draw(st.one_of(st.integers(0, 6), st.integers(7, 120)))
            values_a[code] = actifs
            values_d[code] = draw(st.integers(0, actifs))
        tree[f"R{r}"] = communes
    return tree, {"actifs": values_a, "decembre": values_d}


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hierarchies())
def test_masking_protects_every_random_table_and_is_deterministic(case):
    tree, values = case
    frame = confidential(tree, values)
    result = mask(frame, zones(tree), INDICATORS, POLICY)
    pub = result.published
    counts = pub[pub.indicator.isin(["actifs", "decembre"]) & (pub.status == "published")]
    assert not counts["value"].between(1, 4).any()
    assert audit_published(pub, zones(tree), INDICATORS, POLICY).passed
    again = mask(frame, zones(tree), INDICATORS, POLICY)
    pd.testing.assert_frame_equal(result.published, again.published)
    # every cell keeps its key; masked cells have no value
    assert len(pub) == len(frame)
    assert pub.loc[pub.status != "published", "value"].isna().all()


def test_the_shipped_policy_covers_every_indicator():
    from pipeline.disclosure.policy import check_against_indicators
    from pipeline.indicators import load_indicators

    assert check_against_indicators(load_policy(), load_indicators()) == []


@st.composite
def masked_tables(draw):
    """A random table and a random set of masked cells: most of them leak."""
    tree, values = draw(hierarchies())
    frame = confidential(tree, values)
    hidden = draw(st.lists(st.booleans(), min_size=len(frame), max_size=len(frame)))
    chosen = {(i, z) for (i, z), h in zip(zip(frame.indicator, frame.zone_code), hidden) if h}
    return tree, frame, chosen | primary(frame)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(masked_tables())
def test_the_witnessed_audit_finds_what_the_exact_one_finds(case):
    """Witness tables only spare solves: the findings are those of an exact interval per
    cell and per sum, and each reported range lies within the exact interval (the
    reader cannot narrow it) and holds the true value's neighbourhood it claims."""
    tree, frame, masked = case
    published = published_from(frame, masked)
    fast = audit_published(published, zones(tree), INDICATORS, POLICY)
    exact = audit_published(published, zones(tree), INDICATORS, POLICY, witnesses=False)
    assert [(f.problem, f.cells) for f in fast.findings] == [(f.problem, f.cells) for f in exact.findings]
    keys = ["level", "zone_code", "indicator", "year"]
    both = fast.intervals.merge(exact.intervals, on=keys, suffixes=("_fast", "_exact"))
    assert len(both) == len(exact.intervals) == len(fast.intervals)
    assert (both["low_fast"] >= both["low_exact"] - 1e-6).all()
    assert (both["high_fast"] <= both["high_exact"] + 1e-6).all()
    truth = both.merge(frame[["level", "zone_code", "indicator", "value"]], on=["level", "zone_code", "indicator"])
    truth = truth[truth["value"].notna()]
    assert (truth["low_exact"] <= truth["value"] + 1e-6).all() and (truth["value"] <= truth["high_exact"] + 1e-6).all()


HURRIED = parse_policy(POLICY_TEXT.replace("max_rounds: 60", "max_rounds: 3"))


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hierarchies())
def test_forced_cuts_always_end_the_masking_with_a_safe_table(case):
    """With 3 rounds only, the cuts are forced from the first round and the last round
    but one masks the findings' whole indicator groups: the masking ends, safely."""
    tree, values = case
    frame = confidential(tree, values)
    result = mask(frame, zones(tree), INDICATORS, HURRIED)
    assert result.rounds <= 3
    assert audit_published(result.published, zones(tree), INDICATORS, POLICY).passed


def test_the_last_round_masks_the_whole_group_and_keeps_what_was_masked():
    """Found by the property above: the programme, solved again, could unmask a cell
    masked the round before; the last round but one now keeps every masked cell."""
    tree = {"R0": ["c0", "c1"], "R1": ["c2"]}
    values = {"actifs": {"c0": 0, "c1": 10, "c2": 1}, "decembre": {"c0": 0, "c1": 5, "c2": 0}}
    result = mask(confidential(tree, values), zones(tree), INDICATORS, HURRIED)
    assert result.subproblems["forced"] == 1
    assert audit_published(result.published, zones(tree), INDICATORS, POLICY).passed


def test_both_audit_modes_agree_on_the_case_of_issue_13():
    """Issue 13, item 5: one year, EPCI E over R0 = {c0}, R1 = {c1..c5}, R2 = {c6..c9},
    R3 = {c10, c11, c12}; the exact mode once called this table contradictory. Both modes
    must give the same findings, and none may be `inconsistent` on a table whose published
    figures obey the primary rule."""
    tree = {"R0": ["c0"], "R1": [f"c{i}" for i in range(1, 6)], "R2": [f"c{i}" for i in range(6, 10)],
            "R3": ["c10", "c11", "c12"]}
    actifs = {c: 0 for rpe in tree.values() for c in rpe} | {"c11": 1, "c12": 2}
    decembre = {c: 0 for rpe in tree.values() for c in rpe} | {"c11": 0, "c12": 1}
    frame = confidential(tree, {"actifs": actifs, "decembre": decembre})
    masked = {("actifs", z) for z in ("E", "R0", "R3", "c11", "c12")} | {("decembre", z) for z in ("E", "R3", "c11")}
    masked |= {("taux", z) for z in frame.zone_code.unique() if z not in ("E", "c12")}
    published = published_from(frame, masked)
    fast = audit_published(published, zones(tree), INDICATORS, POLICY)
    exact = audit_published(published, zones(tree), INDICATORS, POLICY, witnesses=False)
    assert ([(f.problem, f.cells, f.term) for f in fast.findings]
            == [(f.problem, f.cells, f.term) for f in exact.findings])
    # the same pattern with the rates the primary rule masks hidden too: consistent, and
    # both modes still agree
    lawful = published_from(frame, masked | primary(frame))
    fast = audit_published(lawful, zones(tree), INDICATORS, POLICY)
    exact = audit_published(lawful, zones(tree), INDICATORS, POLICY, witnesses=False)
    assert ([(f.problem, f.cells, f.term) for f in fast.findings]
            == [(f.problem, f.cells, f.term) for f in exact.findings])
    assert not any(f.problem == "inconsistent" for f in fast.findings)


def test_the_solver_prints_no_banner():
    """highspy prints its banner when a process creates its first solver: `make run` and
    the logs stay free of it."""
    import subprocess
    import sys

    code = "from pipeline.disclosure.audit_solver import _quiet_highs; _quiet_highs(); _quiet_highs(); print('done')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "done\n" and "HiGHS" not in out.stderr


def test_masking_log_intervals_lookup_is_the_left_merge():
    """`_with_intervals` replaces a merge on the cell keys: same frame, unmatched cells NaN,
    and the merge itself whenever keys repeat."""
    from pipeline.disclosure.suppression import _with_intervals

    log = pd.DataFrame({"level": ["commune", "commune", "rpe"], "zone_code": ["A", "B", "R"],
                        "indicator": ["actifs"] * 3, "year": [2020, 2020, 2020], "reason": ["primary"] * 3})
    intervals = pd.DataFrame({"level": ["rpe", "commune"], "zone_code": ["R", "A"], "indicator": ["actifs"] * 2,
                              "year": [2020, 2020], "low": [0.0, 1.0], "high": [9.0, 6.0]})
    pd.testing.assert_frame_equal(_with_intervals(log, intervals),
                                  log.merge(intervals, on=["level", "zone_code", "indicator", "year"], how="left"))
    twice = pd.concat([intervals, intervals], ignore_index=True)
    pd.testing.assert_frame_equal(_with_intervals(log, twice),
                                  log.merge(twice, on=["level", "zone_code", "indicator", "year"], how="left"))
