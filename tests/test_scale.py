"""Scale: the national sample generator (on a reduced synthetic France), the referential
with several EPCIs, and the decomposition of the masking problem into independent
sub-problems. Fast; no timing assertion (timings are `make bench`'s business)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from pipeline.catalog import load_catalog
from pipeline.disclosure.audit import audit_published
from pipeline.disclosure.suppression import decompose, mask
from pipeline.extract import extract, locate
from pipeline.indicators import parse_indicators
from pipeline.sample import NATIONAL_COMMUNES, generate, national_referential, sampled_sources
from pipeline.settings import Paths
from pipeline.staging import stage
from pipeline.territory import TerritoryError, departement_of, load_territory
from pipeline.validation import validate
from tests.test_disclosure import POLICY

pytestmark = pytest.mark.slow

SMALL_FRANCE = 420


# --------------------------------------------------------------------------- the generator


def test_full_size_referential_looks_like_france() -> None:
    territory, zones = national_referential(seed=2022)
    assert len(territory) == NATIONAL_COMMUNES
    assert territory["code_commune"].is_unique
    departments = territory["code_commune"].map(departement_of)
    assert departments.nunique() == 101
    assert {"2A", "2B", "971", "976"} <= set(departments)
    assert 1_150 <= len(zones["epcis"]) <= 1_350
    pop = territory["population_2021"]
    assert (pop < 500).mean() > 0.45  # most French communes are small
    assert pop.max() > 200_000 and pop.min() >= 1
    # each EPCI inside one department, each RPE-like group inside one EPCI
    assert (territory.groupby("code_epci")["code_commune"].agg(lambda c: c.map(departement_of).nunique()) == 1).all()
    assert (territory.groupby("code_rpe")["code_epci"].nunique() == 1).all()
    assert set(territory["code_epci"]) == set(zones["epcis"]) and set(territory["code_rpe"]) == set(zones["rpe"])


@pytest.fixture(scope="module")
def small_france(tmp_path_factory) -> Paths:
    root = tmp_path_factory.mktemp("france")
    written = generate(root / "raw", seed=7, scale="national", n_communes=SMALL_FRANCE)
    assert written and all(p.parent == root / "raw" for p in written)
    return Paths(root=root, config=root / "config", raw=root / "raw", warehouse=root / "warehouse" / "w.duckdb",
                 reports=root / "reports")


def test_national_referential_folder_loads(small_france: Paths) -> None:
    territory = load_territory(small_france)
    assert len(territory.communes) == SMALL_FRANCE
    assert len(territory.epcis) > 5 and territory.epci_code in territory.epcis
    zones = territory.zones()
    assert set(zones["level"]) == {"commune", "rpe", "epci"}
    assert zones["zone_code"].is_unique
    parent = dict(zip(zones["zone_code"], zones["parent_code"]))
    level = dict(zip(zones["zone_code"], zones["level"]))
    for code, lvl in level.items():  # commune -> RPE -> EPCI -> nothing
        expected = {"commune": "rpe", "rpe": "epci", "epci": None}[lvl]
        assert (level.get(parent[code]) if expected else parent[code]) == expected
    assert territory.level_of(next(iter(territory.epcis))) == "epci"
    # the other config files are there, as CAF_CONFIG_DIR needs them
    for name in ("catalog.yaml", "indicators.yaml", "disclosure.yaml", "study.yaml", "commune_changes.csv"):
        assert (small_france.config / name).exists()


def test_national_files_have_the_catalog_shapes_and_validate(small_france: Paths) -> None:
    catalog = load_catalog(small_france)
    territory = load_territory(small_france)
    for source in sampled_sources(catalog):
        for year in source.years:
            vintage = catalog.vintage(source.id, year)
            path, sheet = locate(small_france.raw, vintage, catalog)
            table = extract(path, vintage, sheet)
            staged = stage(table.frame, vintage, source, catalog, territory)
            report = validate(staged, territory)
            assert report.passed, report.to_error()
            levels = staged.wide["level"].value_counts()
            assert levels["commune"] == SMALL_FRANCE, (source.id, year)
            if source.producer == "CAF":  # an RPE row for every group, an EPCI row for every EPCI
                assert levels["rpe"] == len(territory.rpe_names) and levels["epci"] == len(territory.epcis)
            elif source.producer == "Cnaf":
                assert levels["epci"] == len(territory.epcis) and "rpe" not in levels
            else:
                assert set(levels.index) == {"commune"}


def test_cabbalr_referential_is_unchanged_by_the_epci_list() -> None:
    territory = load_territory()
    assert territory.epcis == {territory.epci_code: territory.epci_name}
    zones = territory.zones()
    assert list(zones["level"]).count("epci") == 1
    assert set(zones.loc[zones["level"] == "rpe", "parent_code"]) == {territory.epci_code}


def test_an_rpe_across_two_epcis_is_refused(small_france: Paths, tmp_path) -> None:
    import shutil

    config = tmp_path / "config"
    shutil.copytree(small_france.config, config)
    table = pd.read_csv(config / "territory.csv", sep=";", dtype=str)
    other = table.loc[table["code_epci"] != table.loc[0, "code_epci"], "code_epci"].iloc[0]
    table.loc[0, "code_epci"] = other  # commune 0 now in another EPCI than its RPE
    table.to_csv(config / "territory.csv", sep=";", index=False)
    with pytest.raises(TerritoryError, match="RPE spanning several EPCIs"):
        load_territory(Paths(root=tmp_path, config=config, raw=tmp_path, warehouse=tmp_path / "w", reports=tmp_path))


# --------------------------------------------------------------------------- masking decomposition

INDICATORS = parse_indicators(
    {
        "allocataires": {"source": "s", "measure": "allocataires"},
        "indicators": {
            "actifs": {"label": "a", "unit": "u", "kind": "count", "producer": "CAF", "source": "s",
                       "years": [2019, 2020]},
            "decembre": {"label": "d", "unit": "u", "kind": "count", "producer": "CAF", "source": "s",
                         "years": [2019, 2020]},
            "taux": {"label": "t", "unit": "%", "kind": "ratio", "producer": "CAF", "source": "s",
                     "numerator": "decembre", "denominator": "actifs", "multiplier": 100, "years": [2019, 2020]},
            "naissances": {"label": "n", "unit": "u", "kind": "count", "producer": "INSEE", "source": "i",
                           "years": [2019, 2020]},
        },
    }
)
# the hand-made policy of the disclosure tests (same rules; the cost of the made-up level is unused here)
YEARS = (2019, 2020)


def build(seed: int, n_epci: int = 1, small_share: float = 0.3, secret_share: float = 0.05, safe: bool = False):
    """(confidential.indicators, zones) of a CABBALR-like territory: `n_epci` EPCIs, each
    over 2-4 RPE of 1-6 communes, two years; counts, a rate, births; some cells secret.
    `safe`: no cell small, secret or unavailable (nothing to mask)."""
    rng = np.random.default_rng(seed)
    zone_rows, rows = [], []
    k = 0
    for e in range(n_epci):
        epci = f"E{e}"
        zone_rows.append(("epci", epci, None))
        tree = {}
        for r in range(int(rng.integers(2, 5))):
            rpe = f"R{e}.{r}"
            zone_rows.append(("rpe", rpe, epci))
            tree[rpe] = []
            for _ in range(int(rng.integers(1, 7))):
                tree[rpe].append(f"{10 + e:02d}{k:03d}")
                zone_rows.append(("commune", tree[rpe][-1], rpe))
                k += 1
        for year in YEARS:
            values = {}
            for code in (c for cs in tree.values() for c in cs):
                small = rng.random() < small_share and not safe
                actifs = int(rng.integers(1, 5)) if small else int(rng.integers(40 if safe else 0, 150))
                decembre = int(rng.integers(10, actifs - 10)) if safe else int(rng.integers(0, actifs + 1))
                values[code] = {"actifs": actifs, "decembre": decembre, "naissances": int(rng.integers(0, 60))}
            for rpe, communes in tree.items():
                values[rpe] = {i: sum(values[c][i] for c in communes) for i in ("actifs", "decembre", "naissances")}
            values[epci] = {i: sum(values[r][i] for r in tree) for i in ("actifs", "decembre", "naissances")}
            for level, code, parent in [z for z in zone_rows if z[1] in values]:
                v = values[code]
                secret = level == "commune" and rng.random() < secret_share and not safe
                for ind in ("actifs", "decembre", "naissances"):
                    status = "secret_at_source" if secret and ind != "naissances" else "ok"
                    rows.append((level, code, code, parent, ind, year, v[ind] if status == "ok" else np.nan,
                                 np.nan, np.nan, 1000.0, status))
                ok = not secret and v["actifs"] > 0
                rows.append((level, code, code, parent, "taux", year,
                             100 * v["decembre"] / v["actifs"] if ok else np.nan,
                             v["decembre"] if not secret else np.nan, v["actifs"] if not secret else np.nan, 1000.0,
                             "ok" if ok else ("secret_at_source" if secret else "not_available")))
    zones = pd.DataFrame(zone_rows, columns=["level", "zone_code", "parent_code"])
    zones["zone_name"] = zones["zone_code"]
    frame = pd.DataFrame(rows, columns=["level", "zone_code", "zone_name", "parent_code", "indicator", "year",
                                        "value", "numerator", "denominator", "allocataires", "status"])
    return frame, zones


def digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(frame.to_csv(index=False).encode("utf-8")).hexdigest()[:16]


# The published tables the masking gave before it was decomposed (one programme per
# year over every cell, commit 1547844), for build(seed) with one EPCI: the
# decomposition must not change them. Seeds 3 and 5 changed later, on purpose: since
# the cuts look only at the finding's indicator group in its zone (commit 82dd10e),
# they take 2 rounds and mask fewer cells (3: 29 -> 25 masked, 20 -> 16 secondary;
# 5: 52 -> 48, 17 -> 13), the pattern sharp cuts gave.
# Policy 2026.3 (the reader model of issue 13: complements and hidden terms protected, what a
# published rate says of its terms, whole numbers) changed seven of them: its reader proves
# more, so the masking hides more (0: 38 -> 41 masked; 1: 42 -> 47; 2: 26 -> 30; 4: 67 -> 70;
# 5: 48 -> 50; 7: 57 -> 62; 9: 40 -> 46); 3, 6 and 8 are unchanged.
BEFORE = {
    0: "9151c1a6a037eb95",  # 4 rounds, 41 cells masked, 16 secondary
    1: "b067f48e7fb6006d",  # 5 rounds, 47 masked, 15 secondary
    2: "997bd63047707e21",  # 4 rounds, 30 masked, 14 secondary
    3: "de6fb34ae649e365",  # 2 rounds, 25 masked, 16 secondary
    4: "8250e8955e0a69c7",  # 2 rounds, 70 masked, 23 secondary
    5: "87fb0e9aeb53635f",  # 3 rounds, 50 masked, 15 secondary
    6: "8923f462fc15a78c",  # 1 round, 38 masked, 12 secondary
    7: "46c8395c722611af",  # 2 rounds, 62 masked, 25 secondary
    8: "e8fbbe8901c0ba6e",  # 1 round, 42 masked, 14 secondary
    9: "27e55822d46d4761",  # 4 rounds, 46 masked, 22 secondary
}
# With sharp cuts from the first round (by default they start when the plain cuts stall,
# at round 15), tables where an audit round finds a masked cell bounded by a published
# cell under the threshold get the cut that protects it: secondary cells (plain cuts
# before commit 82dd10e, sharp cuts), which plain cuts now reach as well.
SHARP_FROM_THE_START = {3: (20, 16), 5: (17, 15)}  # 5: 13 before policy 2026.3


@pytest.mark.parametrize("seed", sorted(BEFORE))
def test_decomposed_masking_publishes_what_the_single_problem_did(seed: int) -> None:
    frame, zones = build(seed)
    result = mask(frame, zones, INDICATORS, POLICY)
    assert digest(result.published) == BEFORE[seed]


@pytest.mark.parametrize("seed", sorted(SHARP_FROM_THE_START))
def test_sharp_cuts_mask_less_and_stay_safe(seed: int) -> None:
    frame, zones = build(seed)
    result = mask(frame, zones, INDICATORS, POLICY, sharp_cuts_from_round=1)
    assert result.counts["secondary"] == SHARP_FROM_THE_START[seed][1] < SHARP_FROM_THE_START[seed][0]
    assert audit_published(result.published, zones, INDICATORS, POLICY).passed


def test_each_tree_is_masked_as_if_it_were_alone() -> None:
    frame, zones = build(11, n_epci=3)
    together = mask(frame, zones, INDICATORS, POLICY)
    assert together.subproblems["total"] == 3 * len(YEARS)
    assert audit_published(together.published, zones, INDICATORS, POLICY).passed
    pub = together.published.set_index(["zone_code", "indicator", "year"])
    roots = {"E0", "E1", "E2"}
    for root in roots:
        codes = set(zones.loc[zones["zone_code"].str.startswith(f"R{root[1:]}.") | (zones["zone_code"] == root)
                              | zones["parent_code"].str.startswith(f"R{root[1:]}.", na=False), "zone_code"])
        alone = mask(frame[frame["zone_code"].isin(codes)], zones[zones["zone_code"].isin(codes)], INDICATORS, POLICY)
        mine = alone.published.set_index(["zone_code", "indicator", "year"])
        pd.testing.assert_frame_equal(pub.loc[mine.index], mine)


def test_worker_processes_give_the_same_result() -> None:
    frame, zones = build(5, n_epci=4)
    serial = mask(frame, zones, INDICATORS, POLICY, workers=1)
    parallel = mask(frame, zones, INDICATORS, POLICY, workers=2)
    assert parallel.subproblems["workers"] == 2
    pd.testing.assert_frame_equal(serial.published, parallel.published)
    pd.testing.assert_frame_equal(serial.log, parallel.log)


def test_the_audit_in_worker_processes_is_the_audit_in_one() -> None:
    frame, zones = build(5, n_epci=4)
    published = mask(frame, zones, INDICATORS, POLICY).published
    # a leaky variant: one published commune count per tree masked alone
    leaky = published.copy()
    communes = leaky.index[(leaky["level"] == "commune") & (leaky["status"] == "published")
                           & (leaky["indicator"] == "actifs")]
    first = leaky.loc[communes].groupby(leaky.loc[communes, "parent_code"].str[:3]).head(1).index
    leaky.loc[first, ["status", "value"]] = ["masked", np.nan]
    keys = ["level", "zone_code", "indicator", "year"]
    for table in (published, leaky):
        one = audit_published(table, zones, INDICATORS, POLICY, workers=1)
        two = audit_published(table, zones, INDICATORS, POLICY, workers=2)
        assert sorted(map(repr, one.findings)) == sorted(map(repr, two.findings))
        assert [f.year for f in two.findings] == sorted(f.year for f in two.findings)
        pd.testing.assert_frame_equal(one.intervals.sort_values(keys, ignore_index=True),
                                      two.intervals.sort_values(keys, ignore_index=True))
        assert (one.cells_checked, one.groups_checked) == (two.cells_checked, two.groups_checked)
    assert audit_published(published, zones, INDICATORS, POLICY, workers=2).passed
    assert not audit_published(leaky, zones, INDICATORS, POLICY, workers=2).passed


def test_decomposition_gives_independent_subproblems() -> None:
    frame, zones = build(3, n_epci=3, safe=True)
    # one more tree with a small cell: the only one that needs solving
    more, more_zones = build(4, n_epci=1, small_share=1.0)
    more = more.replace({"E0": "E9"}).assign(
        zone_code=lambda f: f["zone_code"].str.replace("R0.", "R9.", regex=False),
        parent_code=lambda f: f["parent_code"].str.replace("R0.", "R9.", regex=False))
    more_zones = more_zones.replace({"E0": "E9"}).assign(
        zone_code=lambda f: f["zone_code"].str.replace("R0.", "R9.", regex=False),
        parent_code=lambda f: f["parent_code"].str.replace("R0.", "R9.", regex=False))
    more["zone_code"] = more["zone_code"].where(more["level"] != "commune", "9" + more["zone_code"].str[1:])
    more_zones["zone_code"] = more_zones["zone_code"].where(more_zones["level"] != "commune",
                                                            "9" + more_zones["zone_code"].str[1:])
    frame = pd.concat([frame, more], ignore_index=True)
    zones = pd.concat([zones, more_zones], ignore_index=True)
    from pipeline.disclosure.suppression import _states, primary_rules

    state = _states(frame, primary_rules(frame, POLICY, INDICATORS, frozenset()))
    parts = decompose(frame, zones, state)
    assert [(p.year, p.root) for p in parts] == sorted((y, r) for y in YEARS for r in ("E0", "E1", "E2", "E9"))
    # a partition of the cells
    rows = np.concatenate([p.rows for p in parts])
    assert sorted(rows) == list(range(len(frame)))
    part_of = np.empty(len(frame), dtype=int)
    for i, p in enumerate(parts):
        part_of[p.rows] = i
    # nothing the masking or the audit relates crosses two parts: a zone and its parent
    # (additivity), the indicators of one zone (rates, inequalities), one year
    key = frame.assign(part=part_of)
    assert (key.groupby(["zone_code", "year"])["part"].nunique() == 1).all()
    parent_part = key.merge(key[["zone_code", "indicator", "year", "part"]],
                            left_on=["parent_code", "indicator", "year"],
                            right_on=["zone_code", "indicator", "year"], suffixes=("", "_parent"))
    assert len(parent_part) > 0 and (parent_part["part"] == parent_part["part_parent"]).all()
    # trivially safe: the trees without any small, secret or unavailable cell
    flagged = {p.root for p in parts if not p.trivially_safe}
    assert flagged == {"E9"}
    result = mask(frame, zones, INDICATORS, POLICY)
    assert result.subproblems["trivially_safe"] == 3 * len(YEARS)
    assert result.subproblems["solved"] == len(YEARS)
    assert set(result.published.loc[result.published["status"] == "masked", "zone_code"].map(
        lambda c: c.startswith(("9", "R9", "E9")))) == {True}
    # and the partitions group the trees by department (first commune's code)
    assert {p.partition for p in parts if p.root == "E9"} == {"90"}
