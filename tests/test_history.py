"""Secrecy across releases (issue 22), on three-row-sized tables: the masking and the audit
protect a new table against a reader who holds every earlier release.

Each operator action (a commune moved to another RPE, an RPE split or merged, a commune
nouvelle, a corrected figure, a new year, a policy change) is tried twice: the new table
masked alone, as before the history existed (the union audit must find what a reader of
both releases proves, where there is something to find), and masked with the history
(the union audit finds nothing, and neither does the independent attacker of several
releases in tests/test_releases_attack.py).
"""

from __future__ import annotations

import pandas as pd

from pipeline.disclosure.audit import audit_published
from pipeline.disclosure.history import History, Release
from pipeline.disclosure.policy import parse_policy
from pipeline.disclosure.suppression import mask
from tests.test_disclosure import INDICATORS, POLICY, POLICY_TEXT, confidential, zones

MOVE_BEFORE = {"R1": ["a", "b", "c"], "R2": ["d", "e", "f"]}
MOVE_AFTER = {"R1": ["a", "b"], "R2": ["c", "d", "e", "f"]}
VALUES = {"actifs": {"a": 30, "b": 20, "c": 2, "d": 40, "e": 50, "f": 60}}


def release(frame: pd.DataFrame, tree: dict, policy=POLICY, name: str = "R1", history=None) -> Release:
    published = mask(frame, zones(tree), INDICATORS, policy, history=history).published
    return Release(name, published, zones(tree), policy.rate_decimals, policy.threshold, frame)


def history_of(releases: list[Release], frame: pd.DataFrame, tree: dict, changes=None, policy=POLICY) -> History:
    return History.build(releases, zones(tree), frame, INDICATORS, changes or {}, policy.rate_decimals)


def masked(published: pd.DataFrame, indicator: str = "actifs") -> set[str]:
    return set(published[(published.indicator == indicator) & (published.status == "masked")].zone_code)


def test_a_moved_commune_is_exposed_by_two_releases_masked_alone_and_protected_with_the_history():
    before = confidential(MOVE_BEFORE, VALUES)
    first = release(before, MOVE_BEFORE)
    assert "c" in masked(first.published)
    after = confidential(MOVE_AFTER, VALUES)
    history = history_of([first], after, MOVE_AFTER)
    assert set(history.related) >= {"R1@R1", "R2@R1"}  # the RPEs of before are zones of their own
    alone = mask(after, zones(MOVE_AFTER), INDICATORS, POLICY).published
    findings = audit_published(alone, zones(MOVE_AFTER), INDICATORS, POLICY, history=history).findings
    # c = R2 after - d - e - f: the commune that moved, recomputed
    assert any(("commune", "c", "actifs") in f.cells for f in findings)
    assert audit_published(alone, zones(MOVE_AFTER), INDICATORS, POLICY).passed  # each release alone is clean
    protected = mask(after, zones(MOVE_AFTER), INDICATORS, POLICY, history=history)
    assert protected.audit.passed
    assert audit_published(protected.published, zones(MOVE_AFTER), INDICATORS, POLICY, history=history).passed
    assert {"c", "R1", "R2"} <= masked(protected.published)  # both RPE totals of after must go


def test_an_rpe_split_and_merged_again_is_protected_against_every_release():
    split = {"R1": ["a", "b"], "R3": ["c"], "R2": ["d", "e", "f"]}
    first = release(confidential(MOVE_BEFORE, VALUES), MOVE_BEFORE)
    frame = confidential(split, VALUES)
    history = history_of([first], frame, split)
    second = release(frame, split, name="R2", history=history)
    assert audit_published(second.published, zones(split), INDICATORS, POLICY, history=history).passed
    merged = {"R1": ["a", "b", "c", "d", "e", "f"]}
    frame = confidential(merged, VALUES)
    history = history_of([first, second], frame, merged)
    third = mask(frame, zones(merged), INDICATORS, POLICY, history=history)
    assert audit_published(third.published, zones(merged), INDICATORS, POLICY, history=history).passed


def test_a_commune_nouvelle_is_the_union_of_the_communes_it_merged():
    first = release(confidential(MOVE_BEFORE, VALUES), MOVE_BEFORE)
    after_tree = {"R1": ["a", "b"], "R2": ["d", "e", "f"]}  # c merged into b: b covers b and c
    values = {"actifs": {"a": 30, "b": 22, "d": 40, "e": 50, "f": 60}}
    frame = confidential(after_tree, values)
    history = history_of([first], frame, after_tree, changes={"c": "b"})
    assert "b@R1" in history.related and "c@R1" in history.related  # the communes of before, apart
    assert "R1@R1" not in history.related  # R1 covers the same communes as before: the same zone
    result = mask(frame, zones(after_tree), INDICATORS, POLICY, history=history)
    assert audit_published(result.published, zones(after_tree), INDICATORS, POLICY, history=history).passed
    # c (2) and b (20) were masked; b now covers both: its 22 is R1 - a, which the first release
    # already gave, and tells nothing of c alone: nothing needs masking
    assert masked(first.published) == {"b", "c"} and masked(result.published) == set()


def test_a_corrected_figure_is_another_unknown_and_the_correction_is_counted():
    first = release(confidential(MOVE_BEFORE, VALUES), MOVE_BEFORE)
    corrected = {"actifs": {**VALUES["actifs"], "b": 21}}  # the CAF re-sends b (and so R1, E)
    frame = confidential(MOVE_BEFORE, corrected)
    history = history_of([first], frame, MOVE_BEFORE)
    assert history.corrections == 3  # b, R1 and E changed; nothing else is linked apart
    assert history.versioned[0][2020] == {("b", "actifs"), ("R1", "actifs"), ("E", "actifs")}
    result = mask(frame, zones(MOVE_BEFORE), INDICATORS, POLICY, history=history)
    audit = audit_published(result.published, zones(MOVE_BEFORE), INDICATORS, POLICY, history=history)
    assert audit.passed and not any(f.problem == "inconsistent" for f in audit.findings)


def test_a_new_year_leaves_the_years_already_released_as_they_were():
    frame = pd.concat([confidential(MOVE_BEFORE, VALUES, year=2020),
                       confidential(MOVE_BEFORE, {"actifs": {**VALUES["actifs"], "e": 3}}, year=2021)],
                      ignore_index=True)
    first = release(frame[frame.year == 2020], MOVE_BEFORE)
    history = history_of([first], frame, MOVE_BEFORE)
    result = mask(frame, zones(MOVE_BEFORE), INDICATORS, POLICY, history=history)
    keys = ["level", "zone_code", "indicator", "year"]
    same = result.published[result.published.year == 2020].sort_values(keys).reset_index(drop=True)
    assert same[keys + ["value", "status"]].equals(
        first.published.sort_values(keys).reset_index(drop=True)[keys + ["value", "status"]])
    assert audit_published(result.published, zones(MOVE_BEFORE), INDICATORS, POLICY, history=history).passed


def test_a_year_that_had_not_come_is_no_correction():
    """The first release had the year's rows without data (its files had not come); its data
    arriving is not a CAF correction to report (the figures are other unknowns all the same)."""
    frame = pd.concat([confidential(MOVE_BEFORE, VALUES, year=2020), confidential(MOVE_BEFORE, VALUES, year=2021)],
                      ignore_index=True)
    early = frame.copy()
    early.loc[early.year == 2021, ["value", "numerator", "denominator"]] = float("nan")
    first = release(early, MOVE_BEFORE)
    assert history_of([first], frame, MOVE_BEFORE).corrections == 0
    corrected = frame.copy()
    corrected.loc[(corrected.year == 2020) & (corrected.zone_code == "d"), "value"] = 41
    assert history_of([first], corrected, MOVE_BEFORE).corrections >= 1  # a real one is still counted


def test_a_stricter_threshold_masks_what_was_published_without_calling_it_a_leak():
    values = {"actifs": {"a": 7, "b": 20, "c": 30, "d": 40, "e": 50, "f": 60}}
    frame = confidential(MOVE_BEFORE, values)
    first = release(frame, MOVE_BEFORE)
    assert "a" not in masked(first.published)  # 7 is publishable at threshold 5
    stricter = parse_policy(POLICY_TEXT.replace("threshold: 5", "threshold: 10").replace("version: test",
                                                                                          "version: test-10"))
    history = history_of([first], frame, MOVE_BEFORE, policy=stricter)
    result = mask(frame, zones(MOVE_BEFORE), INDICATORS, stricter, history=history)
    assert "a" in masked(result.published)  # the rule applies: shown "s" ...
    audit = audit_published(result.published, zones(MOVE_BEFORE), INDICATORS, stricter, history=history)
    assert audit.passed  # ... and nothing the new table hides of it can be a disclosure: it is known
    assert result.counts["secondary"] == 0  # nothing is masked to shield a figure the reader has


def test_rates_published_with_more_decimals_then_fewer_stay_clean():
    values = {"actifs": {"a": 30, "b": 20, "c": 12, "d": 40, "e": 50, "f": 60},
              "decembre": {"a": 21, "b": 3, "c": 9, "d": 33, "e": 41, "f": 45}}
    frame = confidential(MOVE_BEFORE, values)
    finer = parse_policy(POLICY_TEXT.replace("rate_decimals: 1", "rate_decimals: 2"))
    first = release(frame, MOVE_BEFORE, policy=finer)
    history = history_of([first], frame, MOVE_BEFORE)
    result = mask(frame, zones(MOVE_BEFORE), INDICATORS, POLICY, history=history)
    assert audit_published(result.published, zones(MOVE_BEFORE), INDICATORS, POLICY, history=history).passed


def test_the_masking_memo_knows_the_releases():
    frame = confidential(MOVE_AFTER, VALUES)
    alone = mask(frame, zones(MOVE_AFTER), INDICATORS, POLICY)
    first = release(confidential(MOVE_BEFORE, VALUES), MOVE_BEFORE)
    history = history_of([first], frame, MOVE_AFTER)
    with_history = mask(frame, zones(MOVE_AFTER), INDICATORS, POLICY, history=history, memo={
        f: text for f, (_y, _r, text) in alone.records.items()})
    assert with_history.subproblems["reused"] == 0  # a release more: the record of before is stale
    assert not set(with_history.records) & set(alone.records)


def test_the_policy_declares_that_the_reader_holds_the_releases_and_refuses_a_malformed_switch():
    import pytest

    from pipeline.disclosure.policy import PolicyError, load_policy

    assert load_policy().earlier_releases is True
    with pytest.raises(PolicyError, match="earlier_releases must be true or false"):
        parse_policy(POLICY_TEXT.replace("protection:", "reader:\n  earlier_releases: yes please\nprotection:"))


def _versioned(history: History, k: int = 0) -> set:
    return set(history.versioned[k].get(2020, ()))


def test_a_blank_at_source_is_the_figure_an_earlier_release_published():
    """The CAF blanks a figure by its own rule, whose complementary blanks follow its
    grouping: a figure published before and blanked now is still known to the reader."""
    first = release(confidential(MOVE_BEFORE, VALUES), MOVE_BEFORE)
    assert "a" not in masked(first.published)
    today = confidential(MOVE_BEFORE, VALUES, secret={("actifs", "a")})
    history = history_of([first], today, MOVE_BEFORE)
    assert ("a", "actifs") not in _versioned(history)
    cells = today[["level", "zone_code", "indicator", "year"]]
    known, _ = history.before(cells, {"actifs": "count"}, {"actifs": ("actifs",)})
    assert known[(cells["zone_code"] == "a").to_numpy()].all()
    assert history.corrections == 0


def test_a_blank_behind_which_the_caf_changed_the_figure_is_another_unknown():
    """c is blank in both files; the RPE total moved and nothing known did: the figure behind
    the blank changed (a corrected file), and read as one it would contradict the sums."""
    secret = {("actifs", "c")}
    first = release(confidential(MOVE_BEFORE, VALUES, secret=secret), MOVE_BEFORE)
    same = history_of([first], confidential(MOVE_BEFORE, VALUES, secret=secret), MOVE_BEFORE)
    assert ("c", "actifs") not in _versioned(same)
    corrected = {"actifs": {**VALUES["actifs"], "c": 4}}
    today = confidential(MOVE_BEFORE, corrected, secret=secret)
    history = history_of([first], today, MOVE_BEFORE)
    assert ("c", "actifs") in _versioned(history)
    assert {("R1", "actifs"), ("E", "actifs")} <= _versioned(history)
    result = mask(today, zones(MOVE_BEFORE), INDICATORS, POLICY, history=history)  # no contradiction
    assert audit_published(result.published, zones(MOVE_BEFORE), INDICATORS, POLICY, history=history).passed


def test_a_rate_published_before_tells_more_under_a_stricter_threshold():
    """Published again under a higher threshold, a rate says its terms are 0 or at least the
    new threshold: it is not known before, and masking it protects."""
    values = {"actifs": {"a": 30, "b": 20, "c": 12, "d": 40, "e": 50, "f": 60},
              "decembre": {"a": 24, "b": 14, "c": 6, "d": 30, "e": 41, "f": 52}}
    frame = confidential(MOVE_BEFORE, values)
    first = release(frame, MOVE_BEFORE)
    rates = first.published[(first.published.indicator == "taux") & (first.published.status == "published")]
    assert len(rates)
    cells = rates[["level", "zone_code", "indicator", "year"]]
    kinds, measures = {"taux": "ratio"}, {"taux": ("decembre", "actifs")}
    stricter = parse_policy(POLICY_TEXT.replace("threshold: 5", "threshold: 7"))
    same = History.build([first], zones(MOVE_BEFORE), frame, INDICATORS, {}, POLICY.rate_decimals, POLICY.threshold)
    higher = History.build([first], zones(MOVE_BEFORE), frame, INDICATORS, {}, POLICY.rate_decimals,
                           stricter.threshold)
    assert same.before(cells, kinds, measures)[0].all()
    assert not higher.before(cells, kinds, measures)[0].any()
