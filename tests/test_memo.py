"""What the masking and the audit already decided is reused by fingerprint (issue 17):
the same result as solving again, only the parts that changed solved or audited, and a
leak in a changed part still found."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from pipeline.defs.disclosure import AUDIT_CHECK
from pipeline.disclosure import memo
from pipeline.disclosure.audit import audit_published
from pipeline.disclosure.suppression import mask
from tests.helpers import materialize, query
from tests.test_disclosure import POLICY
from tests.test_scale import INDICATORS, YEARS, build


@pytest.fixture(scope="module")
def four_trees():
    frame, zones = build(5, n_epci=4)
    return frame, zones, mask(frame, zones, INDICATORS, POLICY, workers=1)


def kept(result) -> dict[str, str]:
    return {f: text for f, (_year, _root, text) in result.records.items()}


def test_a_remembered_masking_is_the_masking(four_trees) -> None:
    frame, zones, first = four_trees
    assert first.subproblems["solved"] == 4 * len(YEARS) and first.subproblems["reused"] == 0
    again = mask(frame, zones, INDICATORS, POLICY, workers=1, memo=kept(first))
    assert again.subproblems["solved"] == 0 and again.subproblems["reused"] == 4 * len(YEARS)
    pd.testing.assert_frame_equal(first.published, again.published)
    pd.testing.assert_frame_equal(first.log, again.log)
    assert (first.counts, first.rounds) == (again.counts, again.rounds)
    assert again.records == first.records


def test_only_the_sub_problem_that_changed_is_solved_again(four_trees) -> None:
    frame, zones, first = four_trees
    changed = frame.copy()
    # one more birth in a commune of one tree, one year: its sub-problem, no other
    row = changed.index[(changed["year"] == YEARS[-1]) & (changed["indicator"] == "naissances")
                        & (changed["level"] == "commune") & changed["zone_code"].str.startswith("10")][0]
    changed.loc[row, "value"] += 1
    fresh = mask(changed, zones, INDICATORS, POLICY, workers=1)
    remembered = mask(changed, zones, INDICATORS, POLICY, workers=1, memo=kept(first))
    assert remembered.subproblems["solved"] == 1 and remembered.subproblems["reused"] == 4 * len(YEARS) - 1
    pd.testing.assert_frame_equal(fresh.published, remembered.published)
    pd.testing.assert_frame_equal(fresh.log, remembered.log)


def test_a_record_of_other_rules_or_code_is_not_reused(four_trees, monkeypatch) -> None:
    frame, zones, first = four_trees
    stricter = dataclasses.replace(POLICY, sha256="another policy text")
    assert mask(frame, zones, INDICATORS, stricter, workers=1, memo=kept(first)).subproblems["reused"] == 0
    monkeypatch.setattr(memo, "code_version", lambda: "another version of the masking's code")
    assert mask(frame, zones, INDICATORS, POLICY, workers=1, memo=kept(first)).subproblems["reused"] == 0


def test_the_code_version_covers_every_disclosure_module() -> None:
    from pathlib import Path

    import pipeline.disclosure as package

    modules = {p.name for p in Path(package.__file__).parent.glob("*.py")}
    assert {"audit.py", "audit_solver.py", "reader.py", "suppression.py", "programme.py", "policy.py"} <= modules
    assert len(memo.code_version()) == 64


def test_an_unreadable_record_is_solved_again(four_trees) -> None:
    frame, zones, first = four_trees
    broken = {f: text[: len(text) // 2] for f, text in kept(first).items()}
    again = mask(frame, zones, INDICATORS, POLICY, workers=1, memo=broken)
    assert again.subproblems["reused"] == 0
    pd.testing.assert_frame_equal(first.published, again.published)
    # the same for the audit: a part whose record cannot be read is audited again
    audit = audit_published(first.published, zones, INDICATORS, POLICY, cleared={}, workers=1)
    unreadable = {f: text[:3] for f, (_y, _r, text) in audit.parts.items()}
    audited = audit_published(first.published, zones, INDICATORS, POLICY, cleared=unreadable, workers=1)
    assert audited.passed and (audited.parts_audited, audited.parts_reused) == (4 * len(YEARS), 0)


def test_the_audit_audits_again_only_the_parts_that_changed_and_finds_their_leaks(four_trees) -> None:
    _frame, zones, first = four_trees
    audit = audit_published(first.published, zones, INDICATORS, POLICY, cleared={}, workers=1)
    assert audit.passed and audit.parts_audited == 4 * len(YEARS) == len(audit.parts)
    whole = audit_published(first.published, zones, INDICATORS, POLICY, workers=1)
    assert (audit.cells_checked, audit.groups_checked) == (whole.cells_checked, whole.groups_checked)
    cleared = {f: text for f, (_y, _r, text) in audit.parts.items()}

    again = audit_published(first.published, zones, INDICATORS, POLICY, cleared=cleared, workers=1)
    assert again.passed and (again.parts_audited, again.parts_reused) == (0, 4 * len(YEARS))
    assert (again.cells_checked, again.groups_checked) == (audit.cells_checked, audit.groups_checked)

    # a published commune count masked alone in one part: that part is audited, and the leak found
    leaky = first.published.copy()
    row = leaky.index[(leaky["level"] == "commune") & (leaky["status"] == "published")
                      & (leaky["indicator"] == "actifs") & (leaky["year"] == YEARS[-1])][0]
    leaky.loc[row, ["status", "value"]] = ["masked", np.nan]
    found = audit_published(leaky, zones, INDICATORS, POLICY, cleared=cleared, workers=1)
    assert not found.passed and (found.parts_audited, found.parts_reused) == (1, 4 * len(YEARS) - 1)
    assert {f.year for f in found.findings} == {YEARS[-1]}
    assert len(found.parts) == 4 * len(YEARS) - 1  # the leaky part is not recorded as clean
    # the same findings as an audit of the whole table
    assert sorted(map(repr, found.findings)) == sorted(
        map(repr, audit_published(leaky, zones, INDICATORS, POLICY, workers=1).findings))


def test_an_audit_record_of_other_options_is_not_reused(four_trees) -> None:
    _frame, zones, first = four_trees
    single = audit_published(first.published, zones, INDICATORS, POLICY, sums=False, cleared={}, workers=1)
    cleared = {f: text for f, (_y, _r, text) in single.parts.items()}
    with_sums = audit_published(first.published, zones, INDICATORS, POLICY, cleared=cleared, workers=1)
    assert with_sums.parts_reused == 0 and with_sums.groups_checked > 0


def test_a_run_on_unchanged_data_reuses_the_masking_and_the_audit(built_project) -> None:
    first = materialize(["core_masking", "out_indicators"])
    fingerprint = query(built_project, "SELECT sha256(string_agg(CAST(t AS VARCHAR), '' ORDER BY CAST(t AS VARCHAR))) "
                                       "FROM published.indicators t")
    second = materialize(["core_masking", "out_indicators"])
    assert first.success and second.success
    masking = second.asset_materializations_for_node("core_masking")[0].metadata
    assert masking["subproblems_solved"].value == 0 and masking["subproblems_reused"].value == 5
    (evaluation,) = [e for e in second.get_asset_check_evaluations() if e.check_name == AUDIT_CHECK]
    assert evaluation.passed
    assert evaluation.metadata["parts_audited"].value == 0 and evaluation.metadata["parts_reused"].value == 5
    assert query(built_project, "SELECT sha256(string_agg(CAST(t AS VARCHAR), '' ORDER BY CAST(t AS VARCHAR))) "
                                "FROM published.indicators t") == fingerprint
    assert query(built_project, "SELECT count(*) FROM confidential.masking_memo")[0][0] == 5
    assert query(built_project, "SELECT count(*) FROM confidential.audit_memo")[0][0] == 5
