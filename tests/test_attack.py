"""An independent attacker (tests/attacker.py) against the disclosure control.

- issue 13's five findings, rebuilt by hand as leaky tables: the attacker finds them, and
  the audit flags every leak the attacker proves;
- random small tables and random masks: every leak the attacker proves is flagged by the
  audit; on mask()'s output the attacker proves nothing;
- the sample (seed 2022): the propagation attacker proves nothing on published.indicators.

Every interval the attacker derives is checked against the confidential truth (an
interval missing the truth raises AttackerWrong: the attacker would be wrong).
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from pipeline.disclosure.audit import audit_published
from pipeline.disclosure.suppression import mask
from tests.attack_tables import (
    ALL_ZEROS_B,
    COMPLEMENT_PINNED_BESIDE_MASKED_TERMS,
    COMPLEMENT_ZERO_BESIDE_A_RATE_AT_100,
    COMPLEMENT_ZERO_UNDER_AN_RPE_AT_100,
    EXACT_ATTACKER_PRESOLVE,
    INDICATORS_B,
    MASKING_LEAK_COMPLEMENTS,
    MASKING_LEAK_SMALL_COMMUNE,
    MASKING_LEAK_TWO_RATES,
    MASKING_LEAK_WHOLE_WOMEN,
    ONE_FRACTION_FITS,
    PINNED_BY_THE_PRIMARY_RULE,
    POLICY_B,
    SAME_CELLS_OTHER_FIGURES,
    THREE_RATES_IN_WHOLE_NUMBERS,
    TWO_RATES_IN_WHOLE_NUMBERS,
    TWO_RATES_PIN_A_MASKED_RATE,
    WHOLE_WOMEN_OF_A_SMALL_COMMUNE,
    primary,
    publish,
    table,
)
from tests.attacker import (
    AttackerWrong,
    Contradiction,
    Reader,
    status_oracle,
    unflagged,
)
from tests.attacker_exact import exact_attack, exact_interval
from tests.attacker_propagation import propagation_attack
from tests.test_disclosure import INDICATORS, POLICY, zones

pytestmark = pytest.mark.slow


def profile(examples: int):
    """Derandomised everywhere, as the project's profile (tests/conftest.py): the same
    cases run after run, with or without CI. No shrinking: a failing case is reported as
    drawn (shrinking one took minutes); pin it as an @example."""
    return settings(max_examples=examples, deadline=None, derandomize=True,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


CONTRACT = Reader()


def attack_both(published, tree, frame, indicators=INDICATORS, policy=POLICY, reader=CONTRACT):
    """Both attackers, checked against the truth; the propagation one may only prove
    what the exact one proves (the exact verdict on a figure may be sharper)."""
    fast = propagation_attack(published, zones(tree), indicators, policy, confidential=frame, reader=reader)
    exact = exact_attack(published, zones(tree), indicators, policy, confidential=frame, reader=reader)
    # on the same cells, the exact verdict being sharper ("small" there "pinned"); or on a
    # figure the exact attacker proves 0 (no leak where zeros are published), where the
    # propagation bounds stop at [0, 1]
    cells = {c for leak in exact for c in leak.cells}
    for leak in fast:
        if not set(leak.cells) <= cells:
            low, high = exact_interval(published, zones(tree), indicators, policy, leak.key, reader)
            assert high == 0 and policy.zero_publishable, (leak, (low, high), exact)
    return fast, exact


def assert_audit_flags(leaks, published, tree, indicators=INDICATORS, policy=POLICY):
    audit = audit_published(published, zones(tree), indicators, policy)
    missed = unflagged(leaks, audit)
    assert not missed, "the audit misses leaks the attacker proves:\n" + "\n".join(
        f"  {leak} cells={leak.cells}" for leak in missed)
    assert not leaks or not audit.passed
    return audit


def keys(leaks) -> set[tuple[str, str]]:
    return {(leak.problem, leak.figure) for leak in leaks}


# -- issue 13, finding by finding ----------------------------------------------------------

def test_finding_1_the_complement_of_a_rate_is_an_additive_count():
    """R1's complement 9 - a's published 5 = 4: b's and c's hidden complements add up to 4."""
    tree = {"R1": ["a", "b", "c"], "R2": ["d", "e"]}
    frame = table(tree, {"actifs": {"a": 20, "b": 10, "c": 30, "d": 40, "e": 50},
                         "decembre": {"a": 15, "b": 9, "c": 27, "d": 35, "e": 45}})
    leaky = publish(frame, {("decembre", "b"), ("decembre", "c"), ("taux", "b"), ("taux", "c")})
    fast, exact = attack_both(leaky, tree, frame)
    expected = {("small", "commune b taux complement"), ("small", "commune c taux complement"),
                ("small_sum", "sum of taux complement over b, c (under R1)")}
    assert expected <= keys(fast) and expected <= keys(exact)
    assert [(leak.low, leak.high) for leak in exact if leak.problem == "small_sum"] == [(4, 4)]
    assert_audit_flags(exact, leaky, tree)


def test_finding_2_s_against_nd_on_a_rate():
    """f + h = 5 actifs, both rates "s", a zero-denominator rate "nd": a reader of the old
    legend ("s" exists, "nd" does not) proves f and h between 1 and 4, and their December
    figures too. The contract's reader cannot; the masking never shows that "nd"."""
    tree = {"R1": ["f", "h", "g", "k", "z"], "R2": ["d", "e"]}
    frame = table(tree, {"actifs": {"f": 4, "h": 1, "g": 50, "k": 60, "z": 0, "d": 40, "e": 50},
                         "decembre": {"f": 3, "h": 1, "g": 40, "k": 50, "z": 0, "d": 35, "e": 45}})
    hidden = {("actifs", "f"), ("actifs", "h"), ("decembre", "f"), ("decembre", "h"), ("decembre", "g"),
              ("taux", "f"), ("taux", "h"), ("taux", "g"), ("actifs", "z"), ("decembre", "z")}
    leaky = publish(frame, hidden)
    assert status_oracle(leaky, frame, INDICATORS) == [("commune", "z", "taux", 2020)]
    old = Reader(masked_rate_exists=True)
    fast, exact = attack_both(leaky, tree, frame, reader=old)
    for found in (fast, exact):
        assert {("small", "commune f actifs"), ("small", "commune h actifs"), ("small", "commune f decembre"),
                ("small", "commune h decembre")} <= keys(found)
    # the contract: "s" tells nothing (a zero-denominator rate with a hidden denominator is "s")
    honest = publish(frame, hidden, nd_masked=True)
    assert status_oracle(honest, frame, INDICATORS) == []
    fast, exact = attack_both(honest, tree, frame)
    assert fast == [] and exact == []
    assert_audit_flags(exact, honest, tree)
    # and the masking keeps to it
    result = mask(frame, zones(tree), INDICATORS, POLICY)
    assert status_oracle(result.published, frame, INDICATORS) == []
    fast, exact = attack_both(result.published, tree, frame)
    assert fast == [] and exact == []


def test_finding_3_a_published_rate_says_its_terms_are_0_or_at_least_5():
    """Children L + Li + R = 9; L's female activity rate is published, so L has >= 5 women
    with a child under 3, hence >= 5 children: Li and R are proven <= 4, and R's CMG too."""
    tree = {"R1": ["L", "Li", "R", "x", "y"], "R2": ["d", "e"]}
    frame = table(tree, {
        "enfants": {"L": 7, "Li": 1, "R": 1, "x": 300, "y": 340, "d": 200, "e": 250},
        "cmg": {"L": 2, "Li": 0, "R": 1, "x": 80, "y": 90, "d": 60, "e": 70},
        "femmes": {"L": 6, "Li": 1, "R": 1, "x": 250, "y": 300, "d": 180, "e": 220},
        "femmes_actives": {"L": 0, "Li": 0, "R": 1, "x": 150, "y": 200, "d": 100, "e": 120},
        "places": {"L": 10, "Li": 0, "R": 0, "x": 100, "y": 120, "d": 50, "e": 60},
        "enfants_cnaf": {"L": 8, "Li": 1, "R": 1, "x": 310, "y": 345, "d": 205, "e": 255},
    }, INDICATORS_B)
    hidden = {("enfants", "L"), ("enfants", "Li"), ("enfants", "R"), ("cmg", "L"), ("cmg", "R"), ("cmg", "x"),
              ("taux_fem", "Li"), ("taux_fem", "R"), ("couverture", "Li"), ("couverture", "R"),
              ("couverture", "L")}
    assert primary(frame, POLICY_B) <= hidden
    leaky = publish(frame, hidden)
    fast, exact = attack_both(leaky, tree, frame, INDICATORS_B, POLICY_B)
    expected = {("small", "commune Li enfants"), ("small", "commune R enfants"), ("small", "commune R cmg")}
    assert expected <= keys(fast) and expected <= keys(exact)
    assert_audit_flags(exact, leaky, tree, INDICATORS_B, POLICY_B)
    # without the primary rule's fact, nothing is proven small about Li and R
    fast, exact = attack_both(leaky, tree, frame, INDICATORS_B, POLICY_B, Reader(primary_rule=False))
    assert not expected & keys(exact)


def test_finding_4_a_masked_cell_may_be_zero():
    """The old legend said "s is not a zero": a reader believing it is wrong on true zeros
    (the masking's cheapest partners are zeros), so the contract says a masked count may be 0."""
    tree = {"R1": ["a", "b", "c", "d"], "R2": ["e", "f"]}
    frame = table(tree, {"actifs": {"a": 3, "b": 0, "c": 0, "d": 50, "e": 60, "f": 70},
                         "decembre": {"a": 2, "b": 0, "c": 0, "d": 45, "e": 50, "f": 60}})
    result = mask(frame, zones(tree), INDICATORS, POLICY)
    pub = result.published
    masked_zeros = pub[(pub.status == "masked") & (pub.indicator == "actifs")].merge(
        frame[["zone_code", "indicator", "value"]], on=["zone_code", "indicator"], suffixes=("", "_true"))
    if (masked_zeros["value_true"] == 0).any():
        with pytest.raises((AttackerWrong, Contradiction)):  # its facts are false of this table
            propagation_attack(pub, zones(tree), INDICATORS, POLICY, confidential=frame,
                               reader=Reader(masked_count_nonzero=True))
    fast, exact = attack_both(pub, tree, frame)
    assert fast == [] and exact == []
    # a hand-made table: a's 3 with b = 0 and c = 0 masked beside it; R1 published
    hand = publish(frame, {("actifs", "a"), ("actifs", "b"), ("actifs", "c"), ("decembre", "a"),
                           ("decembre", "b"), ("decembre", "c"), ("taux", "a"), ("taux", "b"), ("taux", "c")})
    with pytest.raises((AttackerWrong, Contradiction)):
        exact_attack(hand, zones(tree), INDICATORS, POLICY, confidential=frame,
                     reader=Reader(masked_count_nonzero=True))
    fast, exact = attack_both(hand, tree, frame)  # a + b + c = 3: proven small, as a sum
    assert ("small_sum", "sum of actifs over a, b, c (under R1)") in keys(exact)
    assert_audit_flags(exact, hand, tree)


ISSUE_5_TREE = {"R0": ["c0"], "R1": ["c1", "c2", "c3", "c4", "c5"], "R2": ["c6", "c7", "c8", "c9"],
                "R3": ["c10", "c11", "c12"]}


def issue_5_frame() -> pd.DataFrame:
    actifs = {f"c{i}": 0 for i in range(13)} | {"c11": 1, "c12": 2}
    decembre = {f"c{i}": 0 for i in range(13)} | {"c12": 1}
    return table(ISSUE_5_TREE, {"actifs": actifs, "decembre": decembre})


def test_finding_5_both_attackers_agree_on_the_issues_case():
    """The case on which the audit's two modes disagreed. As drawn, it publishes rates whose
    terms are small (no masking would): read without the primary rule's fact, both attackers
    pin c12's actifs (50.0 % of a December figure of 1) and agree on everything."""
    frame = issue_5_frame()
    hidden = {("actifs", z) for z in ("E", "R0", "R3", "c11", "c12")} | \
             {("decembre", z) for z in ("E", "R3", "c11")} | \
             {("taux", z) for z in frame.zone_code.unique() if z not in ("E", "c12")}
    drawn = publish(frame, hidden, decimals=15, nd_masked=True)
    fast, exact = attack_both(drawn, ISSUE_5_TREE, frame, reader=Reader(primary_rule=False))
    assert ("pinned", "commune c12 actifs") in keys(fast) & keys(exact)
    assert {leak.key for leak in fast} == {leak.key for leak in exact}
    # the same table kept to the contract (the primary rule masks E's and c12's rates)
    hidden |= primary(frame, POLICY)
    honest = publish(frame, hidden, nd_masked=True)
    fast, exact = attack_both(honest, ISSUE_5_TREE, frame)
    assert {leak.key for leak in fast} == {leak.key for leak in exact}
    assert_audit_flags(exact, honest, ISSUE_5_TREE)


# -- found by the attacker ------------------------------------------------------------------

def test_the_primary_rule_and_the_rounding_pin_a_masked_count():
    """a's rate is published at 71.4 %: its actifs is a multiple of 7 (7, 14, 21, ...:
    100 x 15/21 = 71.43, and no other whole numbers round to 71.4 below 28); the primary
    rule, public, excludes 7 (complement 2) and 14 (complement 4); E's 22 (R2's communes
    published 0 or masked) caps a at 22: a's actifs is 21, its December figure 15 and its
    complement 6, all pinned, and R1's (b is 0) with them."""
    tree = {"R1": ["a", "b"], "R2": ["c", "d"]}
    frame = table(tree, {"actifs": {"a": 21, "b": 0, "c": 1, "d": 0}, "decembre": {"a": 15, "b": 0, "c": 1, "d": 0}})
    hidden = {("actifs", "R1"), ("actifs", "R2"), ("actifs", "a"), ("actifs", "c")} | \
             {("decembre", z) for z in ("E", "R1", "R2", "a", "b", "c", "d")} | \
             {("taux", z) for z in ("E", "R1", "R2", "b", "c", "d")}
    assert primary(frame, POLICY) <= hidden
    leaky = publish(frame, hidden)
    fast, exact = attack_both(leaky, tree, frame)
    expected = {("pinned", "commune a actifs"), ("pinned", "commune a decembre"),
                ("pinned", "commune a taux complement"), ("pinned", "rpe R1 actifs")}
    assert expected <= keys(fast) and expected <= keys(exact)
    assert_audit_flags(exact, leaky, tree)


def test_two_rounded_rates_and_an_inequality_bound_a_hidden_denominator():
    """q's rate 35.5 % with q's women <= q's 48 children: q has 31 women (11 active). R1's
    rate 34.4 %: R1's women are 32, 61, 64, ... and at most 31 + the 23 children of p and
    r: 32. p and r have one woman with a child under 3 between them: r's (rate masked)
    women and complement are proven in [0, 1] (truth 1), p's too."""
    tree = {"R1": ["p", "q", "r"], "R2": ["s", "t"]}
    frame = table(tree, {"enfants": {"p": 2, "q": 48, "r": 21, "s": 90, "t": 80},
                         "femmes": {"p": 0, "q": 31, "r": 1, "s": 70, "t": 60},
                         "femmes_actives": {"p": 0, "q": 11, "r": 0, "s": 30, "t": 20}}, INDICATORS_B)
    hidden = {("enfants", "p"), ("enfants", "r"), ("taux_fem", "r")}
    assert primary(frame, POLICY_B) <= hidden
    leaky = publish(frame, hidden, nd_masked=True)
    _, exact = attack_both(leaky, tree, frame, INDICATORS_B, POLICY_B)
    expected = {("small", "commune r femmes"), ("small", "commune r taux_fem complement")}
    assert expected <= keys(exact)
    assert_audit_flags(exact, leaky, tree, INDICATORS_B, POLICY_B)


def test_the_audit_reads_a_table_whose_rates_with_hidden_terms_are_all_masked():
    """Found by the properties: the audit raised KeyError (in its pins) on this table of
    zeros whose rates are all shown "s" (as the contract shows a rate whose hidden
    denominator is 0), and mask() with it."""
    tree, frame, indicators, policy = ALL_ZEROS_B
    published = publish(frame, set(), nd_masked=True)
    fast, exact = attack_both(published, tree, frame, indicators, policy)
    assert fast == [] and exact == []
    assert_audit_flags(exact, published, tree, indicators, policy)


# found by the attacker on mask()'s output (the audit passed it): E's 61.1 % with E's 30
# children allows 18 women only (11 active); R2's 68.8 % within 18 women allows 16 (11
# active): R0 and R1 have 2 women between them, proven, and each of them 0 to 2
def test_the_masking_leaves_no_sum_of_hidden_women_pinned_by_two_rates():
    tree, frame, indicators, policy = MASKING_LEAK_TWO_RATES
    check_masking(tree, frame, indicators, policy)


# -- properties ----------------------------------------------------------------------------

@st.composite
def trees(draw, max_rpe: int = 4, max_communes: int = 5):
    tree, k = {}, 0
    for r in range(draw(st.integers(2, max_rpe))):
        n = draw(st.integers(1, max_communes))
        tree[f"R{r}"] = [f"c{k + i}" for i in range(n)]
        k += n
    return tree


def small_or_not(draw, low: int = 0):
    return draw(st.one_of(st.integers(low, 6), st.integers(7, 90)))


@st.composite
def tables_a(draw):
    """actifs >= decembre, per commune: many small values, some zeros."""
    tree = draw(trees())
    actifs, decembre = {}, {}
    for c in (c for cs in tree.values() for c in cs):
        actifs[c] = small_or_not(draw)
        decembre[c] = actifs[c] - draw(st.integers(0, min(actifs[c], draw(st.sampled_from([3, 6, 90])))))
    return tree, table(tree, {"actifs": actifs, "decembre": decembre}), INDICATORS, POLICY


@st.composite
def tables_b(draw):
    """children >= women >= active women, children >= CMG; Cnaf places and children apart."""
    tree = draw(trees(max_rpe=3, max_communes=4))
    m = {k: {} for k in ("enfants", "cmg", "femmes", "femmes_actives", "places", "enfants_cnaf")}
    for c in (c for cs in tree.values() for c in cs):
        e = small_or_not(draw)
        m["enfants"][c] = e
        m["cmg"][c] = draw(st.integers(0, e))
        m["femmes"][c] = draw(st.integers(0, e))
        m["femmes_actives"][c] = draw(st.integers(0, m["femmes"][c]))
        m["enfants_cnaf"][c] = small_or_not(draw)
        m["places"][c] = small_or_not(draw)
    return tree, table(tree, m, INDICATORS_B), INDICATORS_B, POLICY_B


@st.composite
def masked_tables(draw, tables):
    """A random table, a random mask over it, and the primary rule applied (the contract
    says published rates keep to it)."""
    tree, frame, indicators, policy = draw(tables)
    share = draw(st.sampled_from([0.2, 0.4, 0.6]))
    hidden = draw(st.lists(st.floats(0, 1), min_size=len(frame), max_size=len(frame)))
    masked = {(i, z) for i, z, h in zip(frame.indicator, frame.zone_code, hidden) if h < share}
    masked |= primary(frame, policy)
    return tree, frame, indicators, policy, masked


def check_random_mask(case):
    tree, frame, indicators, policy, masked = case
    published = publish(frame, masked)
    _, exact = attack_both(published, tree, frame, indicators, policy)
    assert_audit_flags(exact, published, tree, indicators, policy)


@profile(25)
@given(masked_tables(tables_a()))
@example(PINNED_BY_THE_PRIMARY_RULE)
@example(COMPLEMENT_PINNED_BESIDE_MASKED_TERMS)
@example(ONE_FRACTION_FITS)
@example(EXACT_ATTACKER_PRESOLVE)
@example(SAME_CELLS_OTHER_FIGURES)
def test_the_audit_flags_every_leak_the_attacker_proves_on_random_masks(case):
    check_random_mask(case)


@profile(15)
@given(masked_tables(tables_b()))
@example(TWO_RATES_IN_WHOLE_NUMBERS)
@example(TWO_RATES_PIN_A_MASKED_RATE)
@example(THREE_RATES_IN_WHOLE_NUMBERS)
@example(WHOLE_WOMEN_OF_A_SMALL_COMMUNE)
@example(COMPLEMENT_ZERO_BESIDE_A_RATE_AT_100)
@example(COMPLEMENT_ZERO_UNDER_AN_RPE_AT_100)
def test_the_audit_flags_every_leak_the_attacker_proves_on_random_masks_of_hidden_terms(case):
    check_random_mask(case)


def check_masking(tree, frame, indicators, policy):
    result = mask(frame, zones(tree), indicators, policy)
    _, exact = attack_both(result.published, tree, frame, indicators, policy)
    assert not exact, "the masking leaves leaks:\n" + "\n".join(f"  {leak}" for leak in exact)
    assert status_oracle(result.published, frame, indicators) == []


@profile(15)
@given(tables_a())
def test_the_attacker_proves_nothing_on_the_masking(case):
    check_masking(*case)


@profile(8)
@given(tables_b())
@example(ALL_ZEROS_B)
@example(MASKING_LEAK_WHOLE_WOMEN)
@example(MASKING_LEAK_TWO_RATES)
@example(MASKING_LEAK_COMPLEMENTS)
@example(MASKING_LEAK_SMALL_COMMUNE)
def test_the_attacker_proves_nothing_on_the_masking_of_hidden_terms(case):
    check_masking(*case)


# -- the IRIS under their commune (issue 15): a count, the 100-allocataires rule ------------

@st.composite
def iris_tables(draw):
    """Children under 3 in four IRIS of commune A (some under 100 allocataires, some secret
    at source), A their sum, the other communes, RPE and EPCI summed."""
    from tests.test_iris import COMMUNES, _confidential

    iris = {}
    for k in (1, 2, 3, 4):
        secret = draw(st.sampled_from([False, False, False, True]))
        value = float(small_or_not(draw))
        iris[f"A{k}"] = (None, None, "secret_at_source") if secret else \
            (value, float(draw(st.sampled_from([60, 99, 100, 400, 2000]))), "ok")
    truth = {z: draw(st.integers(0, 90)) for z in iris}  # a secret IRIS has a value too
    values = {z: v[0] if v[0] is not None else float(truth[z]) for z, v in iris.items()}
    communes = {**COMMUNES, "A": sum(values.values())}
    frame = _confidential(iris, communes)
    return frame, values


@profile(10)
@given(iris_tables())
def test_the_attackers_prove_nothing_on_the_masking_of_iris(case):
    from tests.test_iris import INDICATORS as IRIS_INDICATORS
    from tests.test_iris import POLICY as IRIS_POLICY
    from tests.test_iris import _mask, _zones

    frame, values = case
    published = _mask(frame).published
    truth = frame.copy()
    secret = truth["status"] == "secret_at_source"
    truth.loc[secret, "value"] = truth.loc[secret, "zone_code"].map(values)  # the attackers check against it
    zones = _zones()
    fast = propagation_attack(published, zones, IRIS_INDICATORS, IRIS_POLICY, confidential=truth)
    exact = exact_attack(published, zones, IRIS_INDICATORS, IRIS_POLICY, confidential=truth)
    assert not fast and not exact, (fast, exact)


# -- the sample ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample_tables(built_warehouse):
    from tests.helpers import published_and_confidential

    return published_and_confidential(built_warehouse)


def test_the_attacker_proves_nothing_on_the_sample(sample_tables):
    from pipeline.disclosure.policy import load_policy
    from pipeline.indicators import load_indicators
    from pipeline.territory import load_territory

    published, confidential = sample_tables
    leaks = propagation_attack(published, load_territory().zones(), load_indicators(), load_policy(),
                               confidential=confidential)
    assert not leaks, "\n".join(f"{leak} cells={leak.cells}" for leak in leaks)
    assert status_oracle(published, confidential, load_indicators()) == []
