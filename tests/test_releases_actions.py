"""Operator actions of issue 22 on the perimeter, through the jobs: one study released after
each, and the independent attacker of several releases (tests/attacker_releases.py) on the
union of all the releases so far: it must find nothing.

One project (the sample's RPE Bruay-la-Buissière and RPE Nœux-les-Mines, 37 communes, so that
the runs fit in the suite) goes through:

1. a first report before the 2021 files came, then the full table (a new year);
2. Hermin moved from RPE-BRU to RPE-NOE (territory.csv, the CAF's files sent again);
3. RPE-BRU split in two (eight of its communes form RPE-BRN), then merged back;
4. a commune nouvelle: Estrée-Cauchy merged into Hermin (commune_changes.csv, the CAF's files
   holding the sum).

The CAF's own secrecy blanks follow the grouping of its files: after a move or a split other
figures are blanked at source. The attacker reads each release with the values behind those
blanks (the sample's truth), so it identifies figures across releases by what they are.

For the move, the same new table masked alone, as before the history existed, is attacked
too: the union must leak there, or the test would prove nothing about the history. The
corrected file and the policy changes: tests/test_releases_data.py.
"""

from __future__ import annotations

import pytest

from pipeline.disclosure.policy import load_policy
from pipeline.disclosure.suppression import mask
from pipeline.indicators import load_indicators
from pipeline.settings import Paths
from pipeline.territory import infra_zones, load_territory
from tests.attacker_releases import ReleaseView, attack_releases
from tests.helpers import query
from tests.release_scenarios import HERMIN, Life, Study, merge_communes, merge_rpes, move_commune, split_rpe

pytestmark = pytest.mark.integration

ESTREE_CAUCHY = "62314"
ACTIONS = ["new_year", "hermin", "split", "merge", "nouvelle"]


def _alone(study: Study, view: ReleaseView, name: str) -> ReleaseView:
    """The new table masked without the history: what the release would have been before issue 22."""
    paths = Paths(root=study.root, config=study.config, raw=study.root / "raw",
                  warehouse=study.root / "warehouse" / "warehouse.duckdb", reports=study.root / "reports")
    territory, policy = load_territory(paths), load_policy(paths)
    confidential = view.confidential
    zones = territory.zones(infra_zones(confidential, territory))
    published = mask(confidential, zones, load_indicators(), policy, workers=1).published
    return ReleaseView(f"{name}-alone", published, view.zones, confidential, view.rate_decimals, view.threshold)


@pytest.fixture(scope="module")
def life(tmp_path_factory) -> Life:
    life = Life(Study(tmp_path_factory.mktemp("life") / "study", rpes=["RPE-BRU", "RPE-NOE"]))
    study = life.study
    life.step("first", drop_years=[2021])
    life.step("new_year")
    move_commune(study.config, HERMIN, "RPE-NOE")
    life.step("hermin")
    # the move masked alone, against the releases before it (the view keeps the truth behind the blanks)
    life.alone = attack_releases([*life.views[:-1], _alone(study, life.views[-1], "hermin")], load_indicators(),
                                 load_policy(path=study.config / "disclosure.yaml"), study.commune_changes(),
                                 exact=False)
    bruay = study.territory().query("code_rpe == 'RPE-BRU'")["code_commune"].tolist()
    split_rpe(study.config, "RPE-BRU", bruay[:8], "RPE-BRN", "RPE Bruay nord")
    life.step("split")
    merge_rpes(study.config, "RPE-BRU", "RPE-BRN")
    life.step("merge")
    before = study.territory()
    merge_communes(study.config, ESTREE_CAUCHY, HERMIN)
    life.step("nouvelle", merger=(before, ESTREE_CAUCHY, HERMIN))
    return life


@pytest.mark.parametrize("action", ACTIONS)
def test_the_union_of_every_release_leaks_nothing(life, action):
    step = life.steps[action]
    assert step.metadata["releases_known"] == ACTIONS.index(action) + 1  # the masking knew them all
    assert [str(leak) for leak in step.leaks] == []
    assert step.stats["linked"] > 0  # the releases share figures: the attack is not on strangers


def test_without_the_history_the_move_leaks(life):
    assert life.alone, "the move masked alone should leak through the union"


def test_the_operator_is_told_of_no_correction_when_the_perimeter_changes(life):
    # a year that had not come, a figure the CAF blanks after a regrouping: no correction
    assert {a: life.steps[a].metadata["figures_corrected_since_releases"] for a in ACTIONS} == dict.fromkeys(ACTIONS, 0)


def test_the_actions_reached_the_published_table(life):
    hermin = life.steps["hermin"].view.published.query("zone_code == @HERMIN")
    assert set(hermin["parent_code"]) == {"RPE-NOE"}
    assert "RPE-BRN" in set(life.steps["split"].view.published["zone_code"])
    assert "RPE-BRN" not in set(life.steps["merge"].view.published["zone_code"])
    assert ESTREE_CAUCHY not in set(life.steps["nouvelle"].view.published["zone_code"])
    first = life.steps["first"].view.published
    assert not (first["year"].eq(2021) & first["status"].eq("published")).any()


def test_every_release_is_recorded(life):
    study = life.study
    assert study.released == [f"R{k}" for k in range(1, len(ACTIONS) + 2)]
    rows = query(study.root, "SELECT release_id, policy_version FROM published.releases ORDER BY released_at")
    assert [r[0] for r in rows] == study.released
