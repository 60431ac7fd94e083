"""The IRIS of the large communes (issue 15): zones below the commune, their indicators,
the 100-allocataires rule and the IRIS adding up to their commune in the secrecy stage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.disclosure.audit import audit_published
from pipeline.disclosure.policy import load_policy
from pipeline.disclosure.suppression import mask
from pipeline.indicators import IndicatorError, load_indicators, parse_indicators
from pipeline.territory import infra_zones, load_territory

POLICY = load_policy()
INDICATORS = load_indicators()
COLUMNS = ["level", "zone_code", "zone_name", "parent_code", "indicator", "year",
           "value", "numerator", "denominator", "allocataires", "status"]


# ---- the zone hierarchy -----------------------------------------------------------------


def _territory():
    return load_territory()


def test_zones_without_iris_are_the_communes_rpe_and_epci():
    territory = _territory()
    zones = territory.zones()
    assert zones["level"].value_counts().to_dict() == {"commune": 100, "rpe": 6, "epci": 1}
    assert zones.equals(territory.zones(infra_zones(pd.DataFrame(), territory)))


def test_iris_are_children_of_their_commune_named_when_a_vintage_names_them():
    territory = _territory()
    staged = pd.DataFrame(
        [
            ("iris", "621190101", "62119", "Centre"),  # 2018: LIBGEO
            ("iris", "621190101", "62119", None),  # 2019: no name
            ("iris", "621190102", "62119", None),
            ("iris", "620280000", "62028", "Ames"),  # a commune not cut into IRIS: the commune itself
            ("iris", "751010101", "75101", "Saint-Germain"),  # outside the territory
        ],
        columns=["level", "zone_code", "parent_code", "zone_name"],
    )
    zones = territory.zones(infra_zones(staged, territory))
    iris = zones[zones["level"] == "iris"]
    assert iris[["zone_code", "parent_code", "zone_name"]].values.tolist() == [
        ["621190101", "62119", "Centre"],
        ["621190102", "62119", "621190102"],  # no name in any vintage: the code
    ]
    assert zones[zones["level"] != "iris"].reset_index(drop=True).equals(territory.zones())


def test_an_iris_level_not_listed_in_zones_yaml_is_ignored():
    territory = _territory()
    staged = pd.DataFrame([("quartier", "62119A", "62119", "Q"), ("quartier", "62119B", "62119", "R")],
                          columns=["level", "zone_code", "parent_code", "zone_name"])
    assert territory.zones(infra_zones(staged, territory)).equals(territory.zones())


# ---- the definitions --------------------------------------------------------------------


def test_children_under_3_are_read_from_the_iris_files_at_the_iris_level_only():
    rows = INDICATORS.levels_frame()
    mine = rows[rows["indicator"] == "enfants_moins_3_ans"]
    assert set(mine.loc[mine["zone_group"] == "commune", "source"]) == {"bca"}
    iris = mine[mine["zone_group"] == "iris"]
    assert set(iris["source"]) == {"caf_iris"} and set(iris["measure"]) == {"enfants_moins_3_ans"}
    assert sorted(iris["year"]) == [2017, 2018, 2019, 2020]
    assert set(iris["alloc_source"]) == {"caf_iris"} and set(iris["alloc_measure"]) == {"allocataires"}
    assert set(rows.loc[rows["zone_group"] == "iris", "indicator"]) == {"enfants_moins_3_ans"}


def test_below_commune_is_checked():
    base = {"label": "l", "unit": "u", "kind": "count", "producer": "CAF", "source": "bca", "years": [2020]}
    with pytest.raises(IndicatorError, match="not below the commune"):
        parse_indicators({"allocataires": {"source": "bca", "measure": "a"},
                          "indicators": {"x": {**base, "below_commune": {"rpe": {"source": "s", "measure": "m",
                                                                                   "years": [2020]}}}}})
    with pytest.raises(IndicatorError, match="years"):
        parse_indicators({"allocataires": {"source": "bca", "measure": "a"},
                          "indicators": {"x": {**base, "below_commune": {"iris": {"source": "s", "measure": "m"}}}}})


# ---- secrecy: the IRIS add up to their commune ------------------------------------------

IND = "enfants_moins_3_ans"


def _zones() -> pd.DataFrame:
    rows = [("epci", "E", None), ("rpe", "R1", "E"), ("rpe", "R2", "E")]
    rows += [("commune", c, "R1") for c in ("A", "B", "C")] + [("commune", c, "R2") for c in ("D", "F")]
    rows += [("iris", f"A{i}", "A") for i in (1, 2, 3, 4)]
    frame = pd.DataFrame(rows, columns=["level", "zone_code", "parent_code"])
    frame["zone_name"] = frame["zone_code"]
    return frame


def _confidential(iris: dict[str, tuple[float | None, float | None, str]], communes: dict[str, float]) -> pd.DataFrame:
    """children under 3: IRIS of A (value, allocataires, status), communes, RPE and EPCI summed."""
    zones = _zones()
    total = {"R1": sum(communes[c] for c in "ABC"), "R2": sum(communes[c] for c in "DF")}
    total["E"] = total["R1"] + total["R2"]
    rows = []
    for z in zones.itertuples():
        if z.level == "iris":
            value, alloc, status = iris[z.zone_code]
        else:
            value, alloc, status = communes.get(z.zone_code, total.get(z.zone_code)), 5000.0, "ok"
        rows.append((z.level, z.zone_code, z.zone_name, z.parent_code, IND, 2020,
                     value if status == "ok" else np.nan, np.nan, np.nan, alloc, status))
    return pd.DataFrame(rows, columns=COLUMNS)


COMMUNES = {"A": 300.0, "B": 40.0, "C": 60.0, "D": 80.0, "F": 90.0}


def _mask(frame):
    return mask(frame, _zones(), INDICATORS, POLICY, frozenset({"iris"}))


def _status(published, zone):
    return published.set_index("zone_code").loc[zone, "status"]


def test_an_iris_under_100_allocataires_is_masked_and_cannot_be_recovered_from_its_commune():
    frame = _confidential({"A1": (30.0, 80.0, "ok"), "A2": (90.0, 900.0, "ok"), "A3": (100.0, 1000.0, "ok"),
                           "A4": (80.0, 700.0, "ok")}, COMMUNES)
    result = _mask(frame)
    published = result.published
    assert _status(published, "A1") == "masked"
    log = result.log.set_index("zone_code")
    assert log.loc["A1", "reason"] == "primary"
    assert log.loc["A1", "rule"] == "infra_communal_zone_below_minimum"
    # A = A1 + A2 + A3 + A4: a second cell of the relation is masked, so A1 is not A minus the others
    relation = published[published["zone_code"].isin(["A", "A2", "A3", "A4"])]
    assert (relation["status"] == "masked").sum() >= 1
    assert audit_published(published, _zones(), INDICATORS, POLICY).findings == []
    # the IRIS over 100 allocataires that were not needed as partners keep their figures
    assert (published.loc[published["level"] == "iris", "status"] == "published").sum() >= 1


def test_the_audit_finds_an_iris_recoverable_from_its_commune_and_the_other_iris():
    frame = _confidential({"A1": (30.0, 80.0, "ok"), "A2": (90.0, 900.0, "ok"), "A3": (100.0, 1000.0, "ok"),
                           "A4": (80.0, 700.0, "ok")}, COMMUNES)
    published = _mask(frame).published
    leaky = published.copy()
    for zone in ("A", "A2", "A3", "A4"):  # hand-made: only A1 masked, its commune and siblings published
        row = leaky["zone_code"] == zone
        leaky.loc[row, "status"] = "published"
        leaky.loc[row, "value"] = frame.set_index("zone_code").loc[zone, "value"]
    for zone in ("R1", "E", "B", "C", "D", "F", "R2"):
        row = leaky["zone_code"] == zone
        leaky.loc[row, "status"] = "published"
        leaky.loc[row, "value"] = frame.set_index("zone_code").loc[zone, "value"]
    assert _status(leaky, "A1") == "masked"
    findings = audit_published(leaky, _zones(), INDICATORS, POLICY).findings
    assert any(("iris", "A1", IND) in f.cells for f in findings)


def test_an_iris_of_a_small_count_is_masked_and_its_siblings_protect_it():
    frame = _confidential({"A1": (3.0, 400.0, "ok"), "A2": (97.0, 900.0, "ok"), "A3": (100.0, 1000.0, "ok"),
                           "A4": (100.0, 700.0, "ok")}, COMMUNES)
    result = _mask(frame)
    assert result.log.set_index("zone_code").loc["A1", "rule"] == "count_below_threshold"
    assert audit_published(result.published, _zones(), INDICATORS, POLICY).findings == []


def test_a_secret_iris_stays_secret_and_is_protected():
    frame = _confidential({"A1": (None, None, "secret_at_source"), "A2": (90.0, 900.0, "ok"),
                           "A3": (100.0, 1000.0, "ok"), "A4": (110.0, 700.0, "ok")}, COMMUNES)
    result = _mask(frame)
    assert _status(result.published, "A1") == "masked"
    assert result.log.set_index("zone_code").loc["A1", "reason"] == "secret_at_source"
    assert audit_published(result.published, _zones(), INDICATORS, POLICY).findings == []
    relation = result.published[result.published["zone_code"].isin(["A", "A2", "A3", "A4"])]
    assert (relation["status"] == "masked").sum() >= 1

