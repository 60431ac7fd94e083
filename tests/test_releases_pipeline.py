"""Secrecy across releases through the jobs (issue 22): the sample released, a commune moved
to another RPE in config/territory.csv, the CAF's files sent again with the new RPE rows,
`make run` again: the masking protects the new table against the first release, the
blocking audit checks the union, and the second release is recorded beside the first."""

from __future__ import annotations

import dagster as dg
import duckdb

from pipeline.defs.disclosure import earlier_releases
from pipeline.disclosure.audit import audit_published
from pipeline.disclosure.policy import load_policy
from pipeline.frames import as_text, read_compact
from pipeline.indicators import load_indicators
from pipeline.launch import launch_release
from pipeline.releases import load_history
from pipeline.sample import generate
from pipeline.territory import infra_zones, load_territory
from tests.conftest import SEED
from tests.helpers import materialize_all
from tests.release_scenarios import move_commune

HERMIN, FROM, TO = "62441", "RPE-BRU", "RPE-NOE"


def resend_sample(project) -> None:
    """The CAF sends its files again, made for the new referential."""
    for path in (project / "raw").iterdir():
        path.unlink()
    generate(project / "raw", seed=SEED)


def test_a_commune_moved_after_a_release_is_protected_against_both(built_project):
    instance = dg.DagsterInstance.ephemeral()
    first = launch_release(instance, operator="test", note="first report")
    assert first.success
    move_commune(built_project / "config", HERMIN, TO)
    resend_sample(built_project)
    assert not materialize_all(instance)
    masking = instance.get_latest_materialization_event(dg.AssetKey("core_masking")).asset_materialization
    assert masking.metadata["releases_known"].value == 1
    with duckdb.connect(str(built_project / "warehouse" / "warehouse.duckdb"), read_only=True) as con:
        releases = load_history(con)
        published = as_text(read_compact(con, "SELECT * FROM published.indicators"))
        candidate = as_text(read_compact(con, "SELECT * FROM confidential.published_candidate"))
        confidential = as_text(read_compact(con, "SELECT * FROM confidential.indicators"))
    assert [r.release_id for r in releases] == ["R1"]
    # the published table is the audited candidate: the blocking check let it through
    assert published.drop(columns="study_id").equals(candidate.drop(columns="study_id"))
    hermin = published[(published.zone_code == HERMIN)]
    assert set(hermin.parent_code) == {TO}
    territory, indicators, policy = load_territory(), load_indicators(), load_policy()
    zones = territory.zones(infra_zones(published, territory))
    history = earlier_releases(releases, zones, confidential, indicators, territory, policy)
    assert {"RPE-BRU@R1", "RPE-NOE@R1"} <= set(history.related)  # the two RPEs of before, zones of their own
    assert audit_published(published, zones, indicators, policy, history=history).passed
    second = launch_release(instance, operator="test", note="after the move")
    assert second.success
    with duckdb.connect(str(built_project / "warehouse" / "warehouse.duckdb"), read_only=True) as con:
        both = load_history(con)
    assert [r.release_id for r in both] == ["R1", "R2"]
    assert both[0].published.equals(releases[0].published)  # a release is never rewritten
