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


def test_allocataires_and_children_under_3_are_read_from_the_iris_files_at_the_iris_level():
    rows = INDICATORS.levels_frame()
    mine = rows[rows["indicator"] == "enfants_moins_3_ans"]
    assert set(mine.loc[mine["zone_group"] == "commune", "source"]) == {"bca"}
    iris = mine[mine["zone_group"] == "iris"]
    assert set(iris["source"]) == {"caf_iris"} and set(iris["measure"]) == {"enfants_moins_3_ans"}
    assert sorted(iris["year"]) == [2017, 2018, 2019, 2020]
    assert set(iris["alloc_source"]) == {"caf_iris"} and set(iris["alloc_measure"]) == {"allocataires"}
    assert set(rows.loc[rows["zone_group"] == "iris", "indicator"]) == {"allocataires", "enfants_moins_3_ans"}
    allocataires = rows[rows["indicator"] == "allocataires"]  # at the IRIS only: not an indicator of the annex
    assert set(allocataires["zone_group"]) == {"iris"} and set(allocataires["source"]) == {"caf_iris"}


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



# The commune keeps its source (the BCA), its IRIS come from the IRIS files: the two need not
# agree. A reader assumes they do until what is published refutes it.

def test_iris_adding_up_to_more_than_their_commune_are_masked_without_a_contradiction():
    """A1 is masked (under 100 allocataires); A minus the other IRIS is negative: a reader
    sees the sources disagree and deduces nothing from the relation (the masking, which
    protects A1 by a partner as if they agreed, must not stop on it)."""
    frame = _confidential({"A1": (90.0, 80.0, "ok"), "A2": (100.0, 900.0, "ok"), "A3": (110.0, 1000.0, "ok"),
                           "A4": (120.0, 700.0, "ok")}, COMMUNES)
    result = _mask(frame)
    assert result.published.set_index("zone_code").loc["A1", "status"] == "masked"
    assert audit_published(result.published, _zones(), INDICATORS, POLICY).findings == []
    refuted = result.published.copy()  # A and the three others published: the relation refuted
    for zone in ("A", "A2", "A3", "A4"):
        row = refuted["zone_code"] == zone
        refuted.loc[row, ["status", "value"]] = ["published", frame.set_index("zone_code").loc[zone, "value"]]
    assert audit_published(refuted, _zones(), INDICATORS, POLICY).findings == []


def test_iris_every_one_published_that_do_not_add_up_are_no_contradiction():
    frame = _confidential({"A1": (50.0, 400.0, "ok"), "A2": (100.0, 900.0, "ok"), "A3": (110.0, 1000.0, "ok"),
                           "A4": (120.0, 700.0, "ok")}, COMMUNES)
    result = _mask(frame)
    assert set(result.published["status"]) == {"published"}
    assert audit_published(result.published, _zones(), INDICATORS, POLICY).findings == []


def test_iris_adding_up_to_less_than_their_commune_still_protect_the_masked_one():
    """A reader who assumes A = A1 + ... + A4 would put A1 at 300 - 250 = 50 (truth 30): a
    value recomputed, even if wrong, is a finding; the masking hides a partner too."""
    frame = _confidential({"A1": (30.0, 80.0, "ok"), "A2": (90.0, 900.0, "ok"), "A3": (100.0, 1000.0, "ok"),
                           "A4": (60.0, 700.0, "ok")}, COMMUNES)
    result = _mask(frame)
    relation = result.published[result.published["zone_code"].isin(["A", "A2", "A3", "A4"])]
    assert (relation["status"] == "masked").sum() >= 1
    assert audit_published(result.published, _zones(), INDICATORS, POLICY).findings == []
    leaky = result.published.copy()
    for zone in ("A", "A2", "A3", "A4"):  # only A1 hidden: the reader's value, 50, is pinned
        row = leaky["zone_code"] == zone
        leaky.loc[row, ["status", "value"]] = ["published", frame.set_index("zone_code").loc[zone, "value"]]
    findings = audit_published(leaky, _zones(), INDICATORS, POLICY).findings
    assert any(("iris", "A1", IND) in f.cells and f.problem == "pinned" for f in findings)


# ---- end to end: the five published files in raw/ ---------------------------------------

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures" / "caf_iris"
NNBSP = "\u202f"


def _thousands(n: int, year: int) -> str:
    """A count as the year's file writes it: U+202F thousands separators until 2018."""
    return f"{n:,}".replace(",", NNBSP) if year <= 2018 else str(n)


def _iris_files(raw) -> None:
    """The five fixtures (published layouts: BOM, U+202F, CRLF, columns that come and go,
    blank secret cells, NOTE = 2 rows), each with two more IRIS of Béthune written in the
    file's own layout: 621190103 under 100 allocataires, 621190104 with ENF_2 blank."""
    for year in range(2016, 2021):
        path = FIXTURES / f"data_CAF_{year}_IRIS.csv"
        data = path.read_bytes()
        assert data.endswith(b"\r\n")
        small = ["621190103", "1", _thousands(80 + year % 5, year), "200", "150", "12", "20"]
        blank = ["621190104", "1", _thousands(1450 + year % 5, year), _thousands(3100, year), "900", "", "80"]
        if year <= 2018:  # LIBGEO;DEPCOM;LIBCOM;EPCI after CODGEO
            small[1:1] = ["Quartier du Marais", "62119", "Béthune", "200072460"]
            blank[1:1] = ["Catorive", "62119", "Béthune", "200072460"]
        extra = "".join(";".join(row) + "\r\n" for row in (small, blank)).encode("utf-8")
        (raw / path.name).write_bytes(data + extra)


def test_a_run_with_the_iris_files_publishes_the_iris_masked_under_100_allocataires(sample_project, built_warehouse):
    import duckdb

    from tests.helpers import materialize_all

    _iris_files(sample_project / "raw")
    assert not materialize_all()
    con = duckdb.connect(str(sample_project / "warehouse" / "warehouse.duckdb"), read_only=True)
    try:
        published = con.execute("SELECT * FROM published.indicators WHERE level = 'iris'").df()
        confidential = con.execute("SELECT * FROM confidential.indicators WHERE level = 'iris'").df()
        log = con.execute("SELECT * FROM confidential.masking_log WHERE level = 'iris'").df()
        others = con.execute("SELECT count(*) FROM published.indicators WHERE level <> 'iris'").fetchone()[0]
    finally:
        con.close()
    with duckdb.connect(str(built_warehouse), read_only=True) as without:
        assert others == without.execute("SELECT count(*) FROM published.indicators").fetchone()[0]
    # the IRIS of Béthune (Ames, NOTE = 2, is a commune not cut into IRIS: not a zone below it)
    assert sorted(set(published["zone_code"])) == ["621190101", "621190102", "621190103", "621190104"]
    assert set(published["parent_code"]) == {"62119"}
    names = dict(zip(published["zone_code"], published["zone_name"]))
    assert names["621190101"] == "Centre" and names["621190103"] == "Quartier du Marais"  # LIBGEO to 2018
    assert set(published["indicator"]) == {"allocataires", "enfants_moins_3_ans"}
    assert set(published.loc[published["indicator"] == "allocataires", "level"]) == {"iris"}
    assert sorted(set(published["year"])) == [2017, 2018, 2019, 2020]
    # under 100 allocataires: every figure masked, by the primary rule naming it
    small = published[published["zone_code"] == "621190103"]
    assert set(small["status"]) == {"masked"} and small["value"].isna().all()
    rules = log[log["zone_code"] == "621190103"]
    assert set(rules["rule"]) == {"infra_communal_zone_below_minimum"}
    # ENF_2 blank: secret at source, masked
    blank = confidential[(confidential["zone_code"] == "621190104") & (confidential["indicator"] == IND)]
    assert set(blank["status"]) == {"secret_at_source"}
    shown = published[(published["zone_code"] == "621190104") & (published["indicator"] == IND)]
    assert set(shown["status"]) == {"masked"}
    # its allocataires (A) are given: a figure of its own, under the same rules
    assert set(confidential.loc[(confidential["zone_code"] == "621190104")
                                & (confidential["indicator"] == "allocataires"), "status"]) == {"ok"}
    # no IRIS under 100 allocataires shows a figure
    alloc = confidential.drop_duplicates(["zone_code", "year"]).set_index(["zone_code", "year"])["allocataires"]
    shown = published[published["status"] == "published"]
    assert all(alloc[(z, y)] >= 100 for z, y in zip(shown["zone_code"], shown["year"]))


# ---- reports: a table, a chart and a sheet per commune with IRIS, under the guard -------


@pytest.fixture(scope="module")
def iris_reports(tmp_path_factory):
    """Reports of children under 3 with three IRIS of Béthune (one masked over the years)."""
    return reports_with_iris(tmp_path_factory.mktemp("iris_reports"), {IND: 100.0}, only=IND)


def reports_with_iris(tmp, first_values: dict[str, float], only: str | None = None):
    """(context, workbook, page) of the sample's published table (indicator `only`, or all)
    with three IRIS of Béthune, the third masked every year; each IRIS indicator of
    `first_values` starts at its value in 2017 and grows by one a year."""
    from pipeline.reports.context import build_context
    from pipeline.reports.excel import write_workbook
    from pipeline.reports.geo import load_geometry
    from pipeline.reports.html import write_html
    from pipeline.settings import PACKAGE_ROOT, Paths
    from tests.test_reports_support import STUDY_ID, full_published

    frame = full_published()
    if only is not None:
        frame = frame[frame["indicator"] == only]
    rows = []
    for code, name, status in (("621190101", "Centre", "published"), ("621190102", "Mont-Liébaut", "published"),
                               ("621190103", "621190103", "masked")):
        for year in (2017, 2018, 2019, 2020):
            for ind, first in first_values.items():
                value = first + year - 2017 if status == "published" else None
                rows.append(("iris", code, name, "62119", ind, year, value, status, STUDY_ID))
    frame = pd.concat([frame, pd.DataFrame(rows, columns=frame.columns)], ignore_index=True)
    paths = Paths(root=PACKAGE_ROOT, config=PACKAGE_ROOT / "config", raw=tmp / "raw",
                  warehouse=tmp / "warehouse.duckdb", reports=tmp / "reports")
    context = build_context(frame, paths=paths)
    xlsx, page = tmp / "rapport.xlsx", tmp / "rapport.html"
    write_workbook(context, xlsx)
    write_html(context, load_geometry(None, "code", context.territory), page)
    return context, xlsx, page


def test_the_reports_show_each_commune_with_iris_and_pass_the_guard(iris_reports):
    import openpyxl

    from pipeline.reports.guard import check_html, check_workbook, parse_html

    context, xlsx, page = iris_reports
    assert [z.code for z in context.communes_with_iris()] == ["62119"]
    assert all(z.level != "iris" for z in context.zones())  # the commune tables keep the communes
    root = parse_html(page.read_text(encoding="utf-8"))
    figure = [f for f in root.find_all("figure") if f.attrs.get("data-graphique") == "iris-62119"]
    assert len(figure) == 1 and figure[0].find_all("svg")
    codes = [tr.attrs.get("data-code") for tr in figure[0].find_all("tr") if tr.attrs.get("data-code")]
    assert codes == ["62119", "621190101", "621190102", "621190103"]
    masked = [td for tr in figure[0].find_all("tr") if tr.attrs.get("data-code") == "621190103"
              for td in tr.find_all("td") if "data-annee" in td.attrs]
    assert {" ".join(td.text().split()) for td in masked} == {context.config.symbols.masked}
    text = " ".join(root.text().split())
    assert "toutes les valeurs d'un IRIS (quartier d'une grande commune) de moins de 100 allocataires" in text
    sources = [p for p in figure[0].find_all("p") if p.has_class("source")]
    assert any("Cnaf" in " ".join(p.text().split()) for p in sources)  # the IRIS files' producer
    workbook = openpyxl.load_workbook(xlsx)
    assert "IRIS Béthune" in workbook.sheetnames
    sheet = workbook["IRIS Béthune"]
    zone_codes = [row[2] for row in sheet.iter_rows(values_only=True) if row[2] and str(row[2]).startswith("62119")]
    assert zone_codes == ["62119", "621190101", "621190102", "621190103"]
    assert check_workbook(xlsx, context).passed, check_workbook(xlsx, context).message()
    assert check_html(page, context, maps_expected=False).passed, check_html(page, context, False).message()


def test_the_guard_catches_an_iris_figure_shown_or_left_out(iris_reports, tmp_path):
    import openpyxl

    from pipeline.reports.guard import check_html, check_workbook

    context, xlsx, page = iris_reports
    symbol = context.config.symbols.masked
    text = page.read_text(encoding="utf-8")
    cell = f'data-annee="2019" data-statut="masked" title="secret statistique">{symbol}</td>'
    start = text.index('data-graphique="iris-62119"')
    at = text.index(cell, text.index('data-code="621190103"', start))
    leaked = text[:at] + 'data-annee="2019" data-statut="masked">37</td>' + text[at + len(cell):]
    (tmp_path / "leak.html").write_text(leaked, encoding="utf-8")
    report = check_html(tmp_path / "leak.html", context, maps_expected=False)
    assert not report.passed and any("621190103, 2019" in p and "holds a number" in p for p in report.problems)
    row_start = text.rindex("<tr", 0, text.index('data-code="621190102"', start))
    dropped = text[:row_start] + text[text.index("</tr>", row_start) + len("</tr>"):]
    (tmp_path / "dropped.html").write_text(dropped, encoding="utf-8")
    report = check_html(tmp_path / "dropped.html", context, maps_expected=False)
    assert any("missing (621190102" in p for p in report.problems)

    workbook = openpyxl.load_workbook(xlsx)
    sheet = workbook["IRIS Béthune"]
    for row in sheet.iter_rows():
        if row[2].value == "621190103":
            row[7].value = 37  # a masked IRIS figure written as a number
    workbook.save(tmp_path / "leak.xlsx")
    report = check_workbook(tmp_path / "leak.xlsx", context)
    assert not report.passed and any("IRIS Béthune" in p and "621190103" in p for p in report.problems)
    del workbook["IRIS Béthune"]
    workbook.save(tmp_path / "nosheet.xlsx")
    assert any("IRIS Béthune" in p and "missing" in p
               for p in check_workbook(tmp_path / "nosheet.xlsx", context).problems)


@pytest.fixture(scope="module")
def iris_only_reports(tmp_path_factory):
    """Reports with the allocataires, an indicator of the IRIS only, beside children under 3."""
    return reports_with_iris(tmp_path_factory.mktemp("iris_only_reports"), {IND: 100.0, "allocataires": 1200.0})


def test_an_indicator_of_the_iris_only_has_its_iris_parts_alone(iris_only_reports, tmp_path):
    import openpyxl

    from pipeline.reports.guard import check_html, check_workbook, parse_html

    context, xlsx, page = iris_only_reports
    assert [i.id for i in context.iris_only_indicators()] == ["allocataires"]
    assert "allocataires" not in [i.id for i in context.reported_indicators]  # no commune, RPE or EPCI figure
    text = page.read_text(encoding="utf-8")
    root = parse_html(text)
    section = [s for s in root.find_all("section") if s.attrs.get("data-indicateur") == "allocataires"]
    assert len(section) == 1
    kinds = [f.attrs.get("data-graphique") for f in section[0].find_all("figure")]
    assert kinds == ["iris-62119"]  # no trend, bars or map: nothing to show above the IRIS
    workbook = openpyxl.load_workbook(xlsx)
    assert "Allocataires" not in workbook.sheetnames
    labels = [row[0] for row in workbook["IRIS Béthune"].iter_rows(values_only=True)]
    assert labels.count("Allocataires") == 4  # Béthune and its three IRIS
    method = [row[0] for row in workbook["Méthodologie"].iter_rows(values_only=True)]
    assert "Nombre d'allocataires" in method
    assert check_workbook(xlsx, context).passed, check_workbook(xlsx, context).message()
    assert check_html(page, context, maps_expected=False).passed, check_html(page, context, False).message()
    # the guard reads these parts too: a masked IRIS figure of the allocataires written out is caught
    start = text.index('data-indicateur="allocataires"', text.index("<section"))
    symbol = context.config.symbols.masked
    cell = f'data-annee="2019" data-statut="masked" title="secret statistique">{symbol}</td>'
    at = text.index(cell, text.index('data-code="621190103"', start))
    leaked = text[:at] + 'data-annee="2019" data-statut="masked">1202</td>' + text[at + len(cell):]
    (tmp_path / "leak.html").write_text(leaked, encoding="utf-8")
    report = check_html(tmp_path / "leak.html", context, maps_expected=False)
    assert not report.passed and any("allocataires" in p and "621190103, 2019" in p for p in report.problems)


def test_communes_whose_iris_do_not_add_up_are_listed_without_values():
    import duckdb

    from pipeline.defs.warehouse import iris_not_adding_up

    con = duckdb.connect()
    con.execute("CREATE SCHEMA confidential")
    rows = [("commune", "62119", "R", IND, 2019, 300.0, "ok"), ("iris", "621190101", "62119", IND, 2019, 120.0, "ok"),
            ("iris", "621190102", "62119", IND, 2019, 180.0, "ok"),
            ("commune", "62119", "R", IND, 2020, 301.0, "ok"), ("iris", "621190101", "62119", IND, 2020, 120.0, "ok"),
            ("iris", "621190102", "62119", IND, 2020, 180.0, "ok"),
            ("commune", "62119", "R", IND, 2018, 999.0, "ok"), ("iris", "621190101", "62119", IND, 2018, 120.0, "ok"),
            ("iris", "621190102", "62119", IND, 2018, None, "secret_at_source")]
    frame = pd.DataFrame(rows, columns=["level", "zone_code", "parent_code", "indicator", "year", "value", "status"])
    con.register("frame", frame)  # read by the SQL below (explicitly, not by DuckDB's scan of local variables)
    con.execute("CREATE TABLE confidential.indicators AS SELECT * FROM frame")
    assert iris_not_adding_up(con) == [f"62119 {IND} 2020"]  # 2019 adds up; 2018 has a secret IRIS
