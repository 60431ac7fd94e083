"""Wiring of the disclosure stage on the sample: published table, audit check, blocking."""

from __future__ import annotations

from pipeline.defs.disclosure import AUDIT_CHECK
from tests.helpers import materialize, query


def test_published_table_from_the_sample(built_project):
    columns = [c for (c,) in query(built_project, "SELECT column_name FROM information_schema.columns "
                                                  "WHERE table_schema = 'published' AND table_name = 'indicators'")]
    assert columns == ["level", "zone_code", "zone_name", "parent_code", "indicator", "year", "value", "status",
                       "study_id"]
    same_keys = query(built_project, """
        SELECT count(*) FROM confidential.indicators c
        FULL JOIN published.indicators p USING (level, zone_code, indicator, year)
        WHERE c.level IS NULL OR p.level IS NULL""")[0][0]
    assert same_keys == 0
    statuses = dict(query(built_project, "SELECT status, count(*) FROM published.indicators GROUP BY status"))
    assert set(statuses) == {"published", "masked", "not_available"} and statuses["masked"] > 0
    assert query(built_project, "SELECT count(*) FROM published.indicators WHERE status <> 'published' "
                                "AND value IS NOT NULL")[0][0] == 0
    # no sensitive count between 1 and 4 is published
    small = query(built_project, """
        SELECT count(*) FROM published.indicators
        WHERE status = 'published' AND value BETWEEN 1 AND 4 AND indicator NOT IN
          ('naissances', 'enfants_moins_3_ans_scolarises', 'am_taux_activite',
           'taux_activite_feminine_enfants_moins_3_ans', 'taux_couverture_global')""")[0][0]
    assert small == 0
    # every blank at source stays masked
    assert query(built_project, """
        SELECT count(*) FROM confidential.indicators c JOIN published.indicators p
        USING (level, zone_code, indicator, year)
        WHERE c.status = 'secret_at_source' AND p.status <> 'masked'""")[0][0] == 0
    log = query(built_project, "SELECT DISTINCT reason FROM confidential.masking_log")
    assert {r for (r,) in log} >= {"secret_at_source", "primary", "secondary"}


def test_audit_check_passes_and_records_the_policy(built_project):
    result = materialize(["core_masking", "out_indicators"])
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    # the audit, and the derived shape checks of the candidate and the published table (all passed)
    assert sorted((e.asset_key.to_user_string(), e.check_name) for e in evaluations) == [
        ("core_masking", "audit_secret_statistique"), ("core_masking", "forme_declaree"),
        ("out_indicators", "forme_declaree")]
    assert all(e.passed for e in evaluations)
    (evaluation,) = [e for e in evaluations if e.check_name == "audit_secret_statistique"]
    assert evaluation.metadata["sums_checked"].value > 0
    masking = result.asset_materializations_for_node("core_masking")[0]
    assert len(masking.metadata["policy_sha256"].value) == 64
    # the CABBALR: one tree, five years, each solved without forcing (or taken from the memo of
    # the run that built the warehouse: tests/test_memo.py)
    assert masking.metadata["subproblems_solved"].value + masking.metadata["subproblems_reused"].value == 5
    assert masking.metadata["subproblems_forced"].value == 0


def test_a_leaky_pattern_is_blocked_before_publication(built_project, monkeypatch):
    """If the solver were wrong, the independent audit stops publication; the last
    published table stays."""
    import pipeline.defs.disclosure as disclosure
    from pipeline.disclosure import suppression

    before = query(built_project, "SELECT count(*), count(value), sum(value) FROM published.indicators")

    def primary_only(frame, zones, indicators, policy, infra, **options):
        result = suppression.mask(frame, zones, indicators, policy, infra, **options)
        # publish back every secondary cell: what per-cell protection would do
        secondary = result.log[result.log["reason"] == "secondary"][["level", "zone_code", "indicator", "year"]]
        keys = set(map(tuple, secondary.to_numpy()))
        pub = result.published
        hit = [k in keys for k in zip(pub.level, pub.zone_code, pub.indicator, pub.year)]
        original = frame.set_index(["level", "zone_code", "indicator", "year"])["value"]
        pub.loc[hit, "value"] = [original.loc[k]
                                 for k, h in zip(zip(pub.level, pub.zone_code, pub.indicator, pub.year), hit) if h]
        pub.loc[hit, "status"] = "published"
        return result

    monkeypatch.setattr(disclosure, "mask", primary_only)
    result = materialize(["core_masking", "out_indicators"])
    assert not result.success
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == AUDIT_CHECK]
    assert not evaluation.passed and evaluation.metadata["findings"].value > 0
    assert not result.asset_materializations_for_node("out_indicators")
    assert query(built_project, "SELECT count(*), count(value), sum(value) FROM published.indicators") == before
