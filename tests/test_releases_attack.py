"""The attacker of several releases (tests/attacker_releases.py), written apart from the
pipeline's audit and masking (issue 22).

(a) tiny hand-built releases, each masked alone so that the exact single-release attacker
    (tests/attacker_exact.py) proves nothing: a commune moved between RPEs (the Hermin
    pattern: the RPE before minus the same RPE after is the commune), a move that leaks
    nothing, CAF corrections (a changed figure is another unknown; the truth check catches
    a wrong link);
(c) small tables released at threshold 5, then 7, then with rates at two decimals, each
    masked with the history: the union leaks nothing (cases a random search found, pinned).

Through the jobs, every operator action on the sample's territory: tests/test_releases_actions.py.
"""

from __future__ import annotations

import pytest

from tests.attack_tables import publish, table
from tests.attacker import AttackerWrong, Contradiction
from tests.attacker_exact import exact_attack
from tests.attacker_releases import LAST, ReleaseView, attack_releases
from tests.test_disclosure import INDICATORS, POLICY, zones

# -- (a) tiny tables ---------------------------------------------------------------------------

BEFORE = {"R1": ["a", "b", "h"], "R2": ["c", "d"]}
AFTER = {"R1": ["a", "b"], "R2": ["c", "d", "h"]}
ACTIFS = {"a": 20, "b": 30, "h": 2, "c": 25, "d": 40}
DECEMBRE = {"a": 15, "b": 25, "h": 1, "c": 20, "d": 35}


def _all(tree) -> list[str]:
    return ["E", *tree, *(c for cs in tree.values() for c in cs)]


def release(name, tree, masked_actifs, actifs=ACTIFS, decembre=DECEMBRE, truth=None) -> ReleaseView:
    """A release of the small table: the given communes' actifs masked, December figures and
    rates masked everywhere; checked clean for a reader of this release alone. `truth`: the
    confidential values the release claims to stand on (default: the true ones)."""
    frame = table(tree, {"actifs": actifs, "decembre": decembre})
    masked = ({("actifs", z) for z in masked_actifs} | {("decembre", z) for z in _all(tree)}
              | {("taux", z) for z in _all(tree)})
    published = publish(frame, masked)
    assert exact_attack(published, zones(tree), INDICATORS, POLICY, confidential=frame) == []
    behind = frame if truth is None else table(tree, {"actifs": truth, "decembre": decembre})
    return ReleaseView(name, published, zones(tree)[["level", "zone_code", "parent_code"]], behind, 1, 5)


def found(leaks) -> set[tuple]:
    return {(leak.problem, leak.figure, leak.low, leak.high) for leak in leaks}


def test_a_commune_moved_is_the_rpe_before_minus_the_rpe_after():
    r1 = release("r1", BEFORE, {"h", "a"})
    r2 = release("r2", AFTER, {"h", "c"})
    leaks = attack_releases([r1, r2], INDICATORS, POLICY, workers=1)
    assert ("pinned", "commune h actifs", 2, 2) in found(leaks)
    # and what the definitions tie to it: December actives <= actives
    assert {("small", "commune h decembre", 0, 2), ("small", "commune h taux complement", 0, 2)} <= found(leaks)
    assert LAST.linked > 0 and LAST.corrected == 0


def test_a_move_of_a_published_commune_leaks_nothing():
    # b (30, published in both) moves; h and a stay masked together in R1 (22 between them)
    after = {"R1": ["a", "h"], "R2": ["c", "d", "b"]}
    r1 = release("r1", BEFORE, {"h", "a"})
    r2 = release("r2", after, {"h", "a"})
    assert attack_releases([r1, r2], INDICATORS, POLICY, workers=1) == []


def test_the_zone_before_a_move_is_a_zone_of_its_own():
    """R1 before covers a, b, h; R1 after covers a, b: two zones, named R1@r1 and R1."""
    r1 = release("r1", BEFORE, {"h", "a"})
    r2 = release("r2", AFTER, {"h", "c"})
    leaks = attack_releases([r1, r2], INDICATORS, POLICY, workers=1, exact=False)
    cells = {cell for leak in leaks for cell in leak.cells}
    assert ("commune", "h", "actifs") in cells
    assert all("@" not in cell[1] for cell in cells)  # h is a zone of the last release


def test_a_corrected_hidden_figure_is_another_unknown():
    """h corrected from 2 to 3, masked in both with a: two unknowns h, one a; nothing leaks
    (h_1 + a = 22, h_2 + a = 23) and nothing the attacker derives misses the truth."""
    r1 = release("r1", BEFORE, {"h", "a"})
    r2 = release("r2", BEFORE, {"h", "a"}, actifs={**ACTIFS, "h": 3})
    assert attack_releases([r1, r2], INDICATORS, POLICY, workers=1) == []
    assert LAST.corrected >= 1


def test_a_correction_published_does_not_pin_the_old_figure_wrongly():
    """h corrected 2 -> 6 and published in r2, a and b masked there. Linking h would pin it
    at 6 (and a at 16): wrong. The unchanged b (published in r1) is linked: a = 56 - 30 - 6 =
    20, hence h before = 22 - 20 = 2: true leaks of the strongest reader."""
    r1 = release("r1", BEFORE, {"h", "a"})
    r2 = release("r2", BEFORE, {"a", "b"}, actifs={**ACTIFS, "h": 6})
    leaks = attack_releases([r1, r2], INDICATORS, POLICY, workers=1)
    assert {("pinned", "commune a actifs", 20, 20), ("pinned", "commune h@r1 actifs", 2, 2)} <= found(leaks)
    # a release that hides its correction (says h was 2 behind both) is caught
    liar = release("r2", BEFORE, {"a", "b"}, actifs={**ACTIFS, "h": 6}, truth=ACTIFS)
    with pytest.raises((AttackerWrong, Contradiction)):
        attack_releases([r1, liar], INDICATORS, POLICY, workers=1)


def test_a_changed_rounding_links_the_rates_terms():
    """Same table, rates published at 2 then 1 decimals (each a clean release): the
    attacker reads both roundings of the same terms without contradiction."""
    frame = table(BEFORE, {"actifs": ACTIFS, "decembre": DECEMBRE})
    masked = {("actifs", "h"), ("actifs", "a"), ("decembre", "h"), ("decembre", "a"), ("taux", "h"), ("taux", "a")}
    views = []
    for name, decimals in (("r1", 2), ("r2", 1)):
        published = publish(frame, masked, decimals=decimals)
        views.append(ReleaseView(name, published, zones(BEFORE)[["level", "zone_code", "parent_code"]], frame,
                                 decimals, 5))
    attack_releases(views, INDICATORS, POLICY, workers=1)  # no AttackerWrong, no Contradiction


# -- (c) a stricter threshold, then finer rates, after a release (pinned from a search) ----------


def _policy(threshold: int, decimals: int):
    from pipeline.disclosure.policy import parse_policy
    from tests.test_disclosure import POLICY_TEXT

    return parse_policy(POLICY_TEXT.replace("threshold: 5", f"threshold: {threshold}")
                        .replace("rate_decimals: 1", f"rate_decimals: {decimals}")
                        .replace("version: test", f"version: t{threshold}d{decimals}"))


POLICIES = [(5, 1), (7, 1), (7, 2)]
# found by a random search over small tables (tests of issue 22): each failed before its fix
STRICTER = [
    # the programme had no solution: the audit's cut asked f masked, while the programme's own
    # row for f counted on a total published before
    ({"a": 3, "b": 20, "c": 1, "d": 6, "e": 1, "f": 9}, {"a": 0, "b": 15, "c": 0, "d": 5, "e": 1, "f": 4}),
    # the new table published R1 (18) beside a (12): with b (5, published at threshold 5) the
    # reader had c = 1; the audit took the earlier releases' "c below 7" for "c pinned"
    ({"a": 12, "b": 5, "c": 1, "d": 0, "e": 1, "f": 3}, {"a": 11, "b": 4, "c": 0, "d": 0, "e": 0, "f": 1}),
    # sums the first release alone proved (6 at threshold 5): known, not the new table's leaks
    ({"a": 9, "b": 3, "c": 12, "d": 0, "e": 3, "f": 12}, {"a": 3, "b": 3, "c": 12, "d": 0, "e": 0, "f": 12}),
    # a sum of part of what the first release hid under R1 (a + c <= 6, as a + b + c <= 6)
    ({"a": 40, "b": 20, "c": 1, "d": 7, "e": 0, "f": 5}, {"a": 40, "b": 20, "c": 0, "d": 7, "e": 0, "f": 0}),
    # complements the first release alone bounded below 7, as only a whole-number programme sees
    ({"a": 0, "b": 1, "c": 0, "d": 9, "e": 40, "f": 6}, {"a": 0, "b": 0, "c": 0, "d": 7, "e": 39, "f": 5}),
]


@pytest.mark.parametrize(("actifs", "decembre"), STRICTER)
def test_a_stricter_threshold_then_finer_rates_leak_nothing_through_the_union(actifs, decembre):
    from pipeline.disclosure.audit import audit_published
    from pipeline.disclosure.history import History, Release
    from pipeline.disclosure.suppression import mask
    from tests.test_disclosure import confidential
    from tests.test_history import MOVE_BEFORE

    frame = confidential(MOVE_BEFORE, {"actifs": actifs, "decembre": decembre})
    tree = zones(MOVE_BEFORE)
    releases, views = [], []
    for k, (threshold, decimals) in enumerate(POLICIES):
        policy = _policy(threshold, decimals)
        history = History.build(releases, tree, frame, INDICATORS, {}, decimals) if releases else None
        published = mask(frame, tree, INDICATORS, policy, history=history, workers=1).published
        if history is not None:
            assert audit_published(published, tree, INDICATORS, policy, history=history).passed
        releases.append(Release(f"R{k + 1}", published, tree, decimals, threshold, frame))
        views.append(ReleaseView(f"R{k + 1}", published, tree[["level", "zone_code", "parent_code"]], frame,
                                 decimals, threshold))
        assert [str(leak) for leak in attack_releases(views, INDICATORS, policy, workers=1)] == []
