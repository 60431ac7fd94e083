"""Operator actions of issue 22 on the data and the policy, through the jobs: a corrected CAF
file for years already released, then a stricter threshold, then a finer rounding of rates;
one study released after each, the union of every release so far attacked by the independent
attacker of several releases (tests/attacker_releases.py): it must find nothing.

The project is the sample's RPE Nœux-les-Mines and RPE Douvrin-La Bassée (23 communes). The
correction changes a figure the CAF publishes (children under 3 of a commune in 2021) and one
it blanks at source in both files (the year's active childminders of a commune in 2020: its
RPE's total moves, nothing known does), so that the history must tell that blank apart from
the one of the earlier release; the policy steps keep the corrected files.
"""

from __future__ import annotations

import pytest

from tests.release_scenarios import Life, Study, policy_change

pytestmark = pytest.mark.integration

CHILDREN, ACTIVE = "enfants_moins_3_ans", "am_agrees_actifs_annee"
ACTIONS = ["correction", "threshold", "decimals"]


def _blanked(view, indicator: str, year: int) -> str:
    """A commune whose figure the CAF blanked at source in this release."""
    c = view.confidential
    rows = c[(c["level"] == "commune") & (c["indicator"] == indicator) & (c["year"] == year)
             & c["status"].eq("secret_at_source")]
    assert len(rows), f"no commune blanked at source for {indicator} {year}"
    return str(rows["zone_code"].iloc[0])


@pytest.fixture(scope="module")
def life(tmp_path_factory) -> Life:
    life = Life(Study(tmp_path_factory.mktemp("data") / "study", rpes=["RPE-NOE", "RPE-DOU"]))
    first = life.step("first")
    published = first.view.published
    shown = published[(published["level"] == "commune") & (published["indicator"] == CHILDREN)
                      & (published["year"] == 2021) & (published["status"] == "published")]
    life.corrections = [(2021, str(shown["zone_code"].iloc[0]), CHILDREN, 3),
                        (2020, _blanked(life.study.view("R1"), ACTIVE, 2020), ACTIVE, 1)]
    life.step("correction", corrections=life.corrections)
    policy_change(life.study.config, threshold=7)
    life.step("threshold", corrections=life.corrections)
    policy_change(life.study.config, rate_decimals=2)
    life.step("decimals", corrections=life.corrections)
    return life


@pytest.mark.parametrize("action", ACTIONS)
def test_the_union_of_every_release_leaks_nothing(life, action):
    step = life.steps[action]
    assert step.metadata["releases_known"] == ACTIONS.index(action) + 1
    assert [str(leak) for leak in step.leaks] == []
    assert step.stats["linked"] > 0


def test_the_operator_is_told_of_the_correction(life):
    # the commune, its RPE and the agglomeration: three figures at least, for each release holding them
    assert life.steps["correction"].metadata["figures_corrected_since_releases"] >= 3
    assert life.steps["correction"].stats["corrected"] > 0  # the attacker holds both values too


def test_the_policy_changes_reached_the_published_table(life):
    versions = [s.metadata.get("policy_version") for s in life.steps.values()]
    assert len(set(versions)) == 3  # first = correction, then one per change
    threshold = life.steps["threshold"].view.confidential
    small = threshold[threshold["value"].between(5, 6) & ~threshold["indicator"].str.contains("taux")]
    published = life.steps["threshold"].view.published.merge(small[["level", "zone_code", "indicator", "year"]])
    sensitive = published[~published["indicator"].isin(["naissances", "enfants_moins_3_ans_scolarises"])]
    assert not sensitive["status"].eq("published").any()  # 5 and 6 are below the new threshold
    rates = life.steps["decimals"].view.published
    rates = rates[rates["indicator"].str.startswith("taux") & rates["status"].eq("published")]["value"]
    assert (rates.round(2) == rates).all() and (rates.round(1) != rates).any()
