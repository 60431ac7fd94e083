"""The tau-ARGUS adapter of bench/tauargus_compare.py on a three-commune toy table (fast; times nothing)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pytauargus", reason="pytauargus is not installed: pip install -e '.[bench]' (make test does)")

from bench.tauargus_compare import audit_counts, published_from_mask, tauargus_protect  # noqa: E402
from pipeline.disclosure.audit import audit_published  # noqa: E402
from pipeline.disclosure.policy import parse_policy  # noqa: E402
from pipeline.disclosure.suppression import mask  # noqa: E402
from pipeline.indicators import parse_indicators  # noqa: E402

INDICATORS = parse_indicators({
    "allocataires": {"source": "s", "measure": "allocataires"},
    "indicators": {"actifs": {"label": "a", "unit": "u", "kind": "count", "producer": "CAF", "source": "s",
                              "years": [2020]}},
})
POLICY = parse_policy("""
version: test
threshold: 5
zero_publishable: true
minimum_allocataires: 100
protection: {cost_by_level: {commune: 1, rpe: 50, epci: 100000}}
indicators: {actifs: {sensitive: true, contributors: [value]}}
""")
# EPCI E -> RPE R1 -> communes a, b, c; a and b are small, and so is their sum.
ZONES = pd.DataFrame({
    "level": ["epci", "rpe", "commune", "commune", "commune"],
    "zone_code": ["E", "R1", "a", "b", "c"],
    "zone_name": ["E", "R1", "a", "b", "c"],
    "parent_code": [None, "E", "R1", "R1", "R1"],
})
VALUES = {"a": 2.0, "b": 2.0, "c": 40.0, "R1": 44.0, "E": 44.0}


def table() -> pd.DataFrame:
    t = ZONES.assign(indicator="actifs", year=2020, value=ZONES["zone_code"].map(VALUES),
                     numerator=np.nan, denominator=np.nan, allocataires=1000.0, status="ok")
    return t


def protect(tmp_path, **kw):
    cells = pd.DataFrame({"zone_code": list(VALUES), "value": list(VALUES.values()), "apriori": False})
    return tauargus_protect(cells, ZONES, tmp_path, threshold=5, **kw)


def judge(pattern) -> dict[str, int]:
    t = table()
    masked = t["zone_code"].map(pattern.cells.set_index("zone_code")["status"]).isin(["U", "M"])
    return audit_counts(audit_published(published_from_mask(t, masked), ZONES, INDICATORS, POLICY))


def test_tauargus_respects_its_own_rule_and_our_audit_judges_the_pattern(tmp_path):
    pattern = protect(tmp_path / "freq")
    status = pattern.cells.set_index("zone_code")["status"]
    # tau-ARGUS's own rule: every count 1-4 primary, every realised interval reaching its levels
    assert pattern.method == "OPT"
    assert {z for z, v in VALUES.items() if 1 <= v < 5} <= set(status[status == "U"].index)
    assert pattern.own_rule_violations(5) == []
    # ...but an interval of one unit each way leaves a and b provably 1-4, and a + b with them
    found = judge(pattern)
    assert found["below_cell"] >= 2 and found["below_sum"] >= 1

    # Given the convention's single-cell levels, tau-ARGUS protects the table: the audit passes.
    tightened = protect(tmp_path / "convention", convention_levels=True, legacy_bounds=True)
    assert tightened.own_rule_violations(5) == []
    assert judge(tightened)["total"] == 0

    # This project's mask() on the same table passes the same audit.
    ours = mask(table(), ZONES, INDICATORS, POLICY)
    assert audit_published(ours.published, ZONES, INDICATORS, POLICY).passed


def test_a_new_report_keeps_the_sections_other_measurements_wrote(tmp_path):
    from bench.tauargus_compare import _kept

    out = tmp_path / "results_tauargus.md"
    assert _kept(out) == ""
    out.write_text("# old report\n| a | b |\n\n<!-- kept:releases -->\n## cost\n| 1 |\n<!-- /kept:releases -->\ntail\n",
                   encoding="utf-8")
    assert _kept(out) == "\n<!-- kept:releases -->\n## cost\n| 1 |\n<!-- /kept:releases -->\n"
