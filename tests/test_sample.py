"""Tests of the sample-data generator (the package pipeline/sample/).

The files are read back here with python-calamine and plain byte/text parsing, the way
an ingest would, so that the tests catch a generator that drifts from the catalog, from
its own truth table, or from the quirks of the real files.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from python_calamine import CalamineWorkbook

from pipeline.catalog import Vintage, load_catalog
from pipeline.sample import (
    BUNDLE_FILE,
    FIXED_TIME,
    SENTINEL_LABEL,
    generate,
    sample_truth,
    sampled_sources,
    secret_mask,
)
from pipeline.settings import Paths, project_paths
from pipeline.territory import load_territory

SENTINEL = "ZZ-SENTINELLE-7f3a"
CATALOG = load_catalog()
TERRITORY = load_territory()
COMMUNES = set(TERRITORY.communes["code_commune"])
RPE_OF = dict(zip(TERRITORY.communes["code_commune"], TERRITORY.communes["code_rpe"]))
# the sources the sample writes (commune-level ones; the IRIS file is not modelled)
SAMPLED = sampled_sources(CATALOG)
SECRET_SOURCES = [s for s in SAMPLED if s.blank_means == "secret_at_source"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    base = tmp_path_factory.mktemp("sample")
    return {
        "a": generate(base / "a", seed=2022),
        "b": generate(base / "b", seed=2022),
        "other": generate(base / "other", seed=7),
        "bundle": generate(base / "bundle", seed=2022, bundle=True, sentinel=SENTINEL),
        "sentinel": generate(base / "sentinel", seed=2022, sentinel=SENTINEL),
    }


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    return sample_truth(2022, with_published=True)


# --------------------------------------------------------------------------- readers


def sheet_rows(path: Path, sheet: str) -> list[list[object]]:
    return CalamineWorkbook.from_path(str(path)).get_sheet_by_name(sheet).to_python()


def decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise AssertionError("neither UTF-8 nor Windows-1252")


def csv_rows(path: Path) -> list[list[str]]:
    text = decode(path.read_bytes())
    return [line.split(";") for line in text.split("\r\n") if line]


def code_text(cell: object) -> str:
    return str(int(cell)) if isinstance(cell, float) and cell.is_integer() else str(cell)


def parse_number(cell: object) -> float | None:
    """A cell as a number; None for an empty or secret cell."""
    if cell in ("", None, "s"):
        return None
    if isinstance(cell, (int, float)):
        return float(cell)
    return float(str(cell).replace("\u202f", "").replace("\u00a0", "").replace(",", "."))


def table(path: Path, v: Vintage, sheet: str | None = None) -> tuple[list[str], list[list[object]]]:
    """Labels on the vintage's header row and the data rows below, down to the first
    empty row (the notes follow it)."""
    if path.suffix == ".csv":
        rows: list[list[object]] = csv_rows(path)  # type: ignore[assignment]
    else:
        rows = sheet_rows(path, sheet or v.sheet or "Feuil1")
    labels = [str(x) for x in rows[v.header_row - 1]]
    data = []
    for row in rows[v.header_row:]:
        if all(cell in ("", None) for cell in row):
            break
        data.append(row)
    return labels, data


def by_name(files: list[Path]) -> dict[str, Path]:
    return {p.name: p for p in files}


def vintages_with_file() -> list[Vintage]:
    return [v for s in SAMPLED for v in s.vintages.values()]


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes(out: dict[str, list[Path]]) -> None:
    a, b = by_name(out["a"]), by_name(out["b"])
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].read_bytes() == b[name].read_bytes(), name


def test_other_seed_differs(out: dict[str, list[Path]]) -> None:
    a, other = by_name(out["a"]), by_name(out["other"])
    assert a.keys() == other.keys()
    for name in a:
        assert a[name].read_bytes() != other[name].read_bytes(), name


def test_workbooks_carry_no_clock(out: dict[str, list[Path]]) -> None:
    # Two runs in the same second would hide a current timestamp: check the dates directly.
    for path in out["a"] + out["bundle"]:
        if path.suffix != ".xlsx":
            continue
        with zipfile.ZipFile(path) as z:
            assert {i.date_time for i in z.infolist()} == {FIXED_TIME.timetuple()[:6]}
            core = z.read("docProps/core.xml").decode()
        stamps = re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", core)
        assert stamps and set(stamps) == {FIXED_TIME.isoformat()}


def test_returns_sorted_paths_of_every_catalog_file(out: dict[str, list[Path]]) -> None:
    assert out["a"] == sorted(out["a"])
    assert {p.name for p in out["a"]} == {v.file for v in vintages_with_file()}
    assert all(p.exists() for p in out["a"])


# --------------------------------------------------------------------------- catalog-driven


@pytest.mark.parametrize("v", vintages_with_file(), ids=lambda v: f"{v.source}-{v.year}")
def test_labels_on_header_row(out: dict[str, list[Path]], v: Vintage) -> None:
    path = by_name(out["a"])[v.file]
    labels, data = table(path, v)
    assert set(v.columns) <= set(labels), (v.file, v.sheet, labels)
    assert SENTINEL_LABEL not in labels  # only written with a sentinel
    assert len(data) >= len(COMMUNES)


def test_catalog_edit_changes_the_files(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(project_paths().config, config)
    catalog = (config / "catalog.yaml").read_text(encoding="utf-8")
    catalog = catalog.replace("NB_Femmes_Enf_0_2: femmes_enfants_moins_3_ans",
                              "NB_FEMMES_ENF_0_2_EDIT: femmes_enfants_moins_3_ans")
    catalog = catalog.replace("places_a_creer_2020.xlsx, sheet: \"Places à créer\", header_row: 4",
                              "places_2020_edit.xlsx, sheet: \"Feuille edit\", header_row: 7")
    (config / "catalog.yaml").write_text(catalog, encoding="utf-8")
    paths = Paths(root=tmp_path, config=config, raw=tmp_path / "raw", warehouse=tmp_path / "w.duckdb",
                  reports=tmp_path / "reports")
    files = by_name(generate(tmp_path / "out", paths=paths))
    assert "places_2020_edit.xlsx" in files and "places_a_creer_2020.xlsx" not in files
    edited = load_catalog(paths)
    labels, _ = table(files["places_2020_edit.xlsx"], edited.vintage("places_a_creer", 2020))
    assert "Places théoriques à créer" in labels
    labels, _ = table(files["BCA2017.xlsx"], edited.vintage("bca", 2017))
    assert "NB_FEMMES_ENF_0_2_EDIT" in labels and "NB_Femmes_Enf_0_2" not in labels


# --------------------------------------------------------------------------- values = truth


def _file_values(files: dict[str, Path], v: Vintage) -> dict[tuple[str, str], object]:
    """(zone code, canonical measure) -> raw cell, for the vintage's rows of its file."""
    labels, data = table(files[v.file], v)
    column = {label: labels.index(label) for label in v.columns}
    code_label = v.label_of["code_zone"]
    cells: dict[tuple[str, str], object] = {}
    for row in data:
        if v.year_column:
            year_cell = row[column[v.year_column]]
            year = year_cell.year if isinstance(year_cell, (dt.date, dt.datetime)) else int(year_cell)
            if year != v.year:
                continue
        code = code_text(row[column[code_label]])
        for label, canonical in v.columns.items():
            if canonical not in ("code_zone", "nom_zone") and label != v.year_column:
                cells[(code, canonical)] = row[column[label]]
    return cells


def test_files_hold_exactly_the_truth(out: dict[str, list[Path]], truth: pd.DataFrame) -> None:
    files = by_name(out["a"])
    checked = 0
    for v in vintages_with_file():
        cells = _file_values(files, v)
        expected = truth[(truth["source"] == v.source) & (truth["year"] == v.year)]
        zone_keys = {k for k in cells if k[0] not in CATALOG.technical_codes}
        assert zone_keys == set(zip(expected["zone_code"], expected["measure"])), (v.source, v.year)
        for row in expected.itertuples():
            cell = cells[(row.zone_code, row.measure)]
            if row.published:
                assert parse_number(cell) == pytest.approx(row.value, abs=1e-9), (v.source, v.year, row)
                checked += 1
            else:
                assert parse_number(cell) is None, (v.source, v.year, row)
    assert checked > 5000


def test_truth_shape(truth: pd.DataFrame) -> None:
    plain = sample_truth(2022)
    assert list(plain.columns) == ["source", "year", "level", "zone_code", "measure", "value"]
    assert set(plain["level"]) == {"commune", "rpe", "epci"}
    for source in SAMPLED:
        assert sorted(plain.loc[plain["source"] == source.id, "year"].unique()) == source.years
    assert not plain.duplicated(["source", "year", "level", "zone_code", "measure"]).any()
    # INSEE files hold communes only.
    insee = plain[plain["source"].isin(["naissances", "scolarisation"])]
    assert set(insee["level"]) == {"commune"}


def test_model_constraints(truth: pd.DataFrame) -> None:
    wide = truth[truth["level"] == "commune"].pivot_table(
        index=["year", "zone_code"], columns="measure", values="value", aggfunc="first")
    pairs = [
        ("am_actifs_decembre", "am_agrees_actifs_annee"),
        ("am_plus_55_ans", "am_agrees_actifs_annee"),
        ("enfants_moins_3_ans_cmg", "enfants_moins_3_ans"),
        ("femmes_actives_enfants_moins_3_ans", "femmes_enfants_moins_3_ans"),
        ("enfants_moins_3_ans_scolarises", "enfants_2_ans"),
    ]
    for small, big in pairs:
        both = wide[[small, big]].dropna()
        assert len(both) > 100 and (both[small] <= both[big]).all(), (small, big)
    # Plausible magnitudes against the 2021 population.
    pop = TERRITORY.communes.set_index("code_commune")["population_2021"]
    alloc = wide.loc[2021, "allocataires"]
    ratio = alloc.sum() / pop.sum()
    assert 0.16 < ratio < 0.21
    assert (wide["places_theoriques_a_creer"].dropna() >= 0).all()


def test_rpe_and_epci_rows_are_sums_of_the_truth(truth: pd.DataFrame) -> None:
    for source in SECRET_SOURCES:
        t = truth[truth["source"] == source.id]
        communes = t[t["level"] == "commune"].assign(rpe=lambda d: d["zone_code"].map(RPE_OF))
        sums = communes.groupby(["year", "measure", "rpe"])["value"].sum()
        rpe = t[t["level"] == "rpe"].set_index(["year", "measure", "zone_code"])["value"]
        assert len(rpe) and (rpe.sort_index() == sums.rename_axis(rpe.index.names).sort_index()).all()
        epci = t[t["level"] == "epci"].set_index(["year", "measure"])["value"]
        assert (epci.sort_index() == communes.groupby(["year", "measure"])["value"].sum().sort_index()).all()
        assert set(t.loc[t["level"] == "epci", "zone_code"]) == {TERRITORY.epci_code}
    # Coverage: one EPCI row per year, places and children summed, rate recomputed.
    c = truth[truth["source"] == "couverture"]
    for _year, group in c.groupby("year"):
        communes = group[group["level"] == "commune"].pivot(index="zone_code", columns="measure", values="value")
        epci = group[group["level"] == "epci"].set_index("measure")["value"]
        assert epci["places_accueil"] == communes["places_accueil"].sum()
        assert epci["enfants_moins_3_ans_cnaf"] == communes["enfants_moins_3_ans_cnaf"].sum()
        rate = round(epci["places_accueil"] / epci["enfants_moins_3_ans_cnaf"] * 100, 1)
        assert epci["taux_couverture_global"] == pytest.approx(rate)


def test_coverage_rate_above_100_is_written(out: dict[str, list[Path]], truth: pd.DataFrame) -> None:
    rates = truth[(truth["measure"] == "taux_couverture_global") & (truth["level"] == "commune")]
    assert rates["value"].max() > 100
    v = CATALOG.vintage("couverture", CATALOG.source("couverture").years[0])
    labels, data = table(by_name(out["a"])[v.file], v)
    column = labels.index(v.label_of["taux_couverture_global"])
    assert max(parse_number(r[column]) or 0 for r in data) > 100


# --------------------------------------------------------------------------- quirks


def test_title_block_and_notes(out: dict[str, list[Path]]) -> None:
    files = by_name(out["a"])
    for v in vintages_with_file():
        if not v.file.endswith(".xlsx"):
            continue
        rows = sheet_rows(files[v.file], v.sheet)
        if v.header_row > 1:
            assert rows[0][0], "a title on the first row"
        text = [str(r[0]) for r in rows[v.header_row:]]
        assert any(t.startswith("Source : ") for t in text)
        if CATALOG.source(v.source).blank_means == "secret_at_source":
            assert "s : secret statistique" in text


def test_commune_codes_are_numbers_in_bcecpaj_and_text_in_bca(out: dict[str, list[Path]]) -> None:
    files = by_name(out["a"])
    for v in CATALOG.source("bcecpaj").vintages.values():
        labels, data = table(files[v.file], v)
        codes = [r[labels.index(v.label_of["code_zone"])] for r in data]
        numeric = [c for c in codes if isinstance(c, float)]
        assert {str(int(c)) for c in numeric} >= COMMUNES
    for v in CATALOG.source("bca").vintages.values():
        labels, data = table(files[v.file], v)
        codes = [r[labels.index(v.label_of["code_zone"])] for r in data]
        assert all(isinstance(c, str) for c in codes)


def test_technical_and_total_rows(out: dict[str, list[Path]]) -> None:
    files = by_name(out["a"])
    seen: Counter[str] = Counter()
    for source in SECRET_SOURCES:
        for v in source.vintages.values():
            labels, data = table(files[v.file], v)
            codes = [code_text(r[labels.index(v.label_of["code_zone"])]) for r in data]
            unknown = set(codes) - COMMUNES - set(TERRITORY.rpe_names) - {TERRITORY.epci_code}
            assert unknown <= CATALOG.technical_codes, unknown
            seen.update(unknown)
            # Technical rows follow the primary secrecy rule too (no value 1 to 4).
            for row in data:
                if code_text(row[labels.index(v.label_of["code_zone"])]) in unknown:
                    numbers = [parse_number(c) for c in row[2:]]
                    assert not any(x is not None and 1 <= x <= 4 for x in numbers), row
            assert set(TERRITORY.rpe_names) <= set(codes) and TERRITORY.epci_code in codes
            # Totals come after the communes.
            last_commune = max(i for i, c in enumerate(codes) if c in COMMUNES)
            assert min(codes.index(r) for r in TERRITORY.rpe_names) > last_commune
    assert seen["XXXXX"] == seen["99999"] == len(CATALOG.source("bca").vintages)
    assert seen["XX"] >= 1


def test_extra_unmapped_columns(out: dict[str, list[Path]]) -> None:
    files = by_name(out["a"])
    labels, _ = table(files["BCA2017.xlsx"], CATALOG.vintage("bca", 2017))
    assert {"NB_Enfants_3_5_ans", "AEEH_6A11"} <= set(labels) and "ALL_CMG_ASMA" not in labels
    labels, _ = table(files["BCA2020.xlsx"], CATALOG.vintage("bca", 2020))
    assert {"ALL_CMG_ASMA", "ALL_CMG_DOM"} <= set(labels)


def test_couverture_year_is_a_date(out: dict[str, list[Path]]) -> None:
    v = CATALOG.vintage("couverture", 2017)
    labels, data = table(by_name(out["a"])[v.file], v)
    years = {r[labels.index(v.year_column)] for r in data}
    assert years == {dt.date(y, 12, 31) for y in CATALOG.source("couverture").years}
    codes = [r[labels.index("numcom")] for r in data]
    assert codes.count(TERRITORY.epci_code) == len(years)


def test_csv_quirks(out: dict[str, list[Path]]) -> None:
    csvs = [p for p in out["a"] if p.suffix == ".csv"]
    assert csvs
    narrow, decimal = False, False
    for path in csvs:
        data = path.read_bytes()
        assert data.count(b"\n") == data.count(b"\r\n") > len(COMMUNES), path.name
        text = decode(data)
        narrow |= "\u202f" in text
        decimal |= re.search(r";\d+,\d(;|\r)", text) is not None
        lines = text.split("\r\n")
        assert ";" in lines[0]
        # One or two missing values per INSEE file, as empty fields in data rows.
        empty = sum(1 for line in lines[1:] if line for f in line.split(";") if f == "")
        assert 1 <= empty <= 2, path.name
        # INSEE files: communes only.
        codes = {line.split(";")[0] for line in lines[1:] if line}
        assert codes == COMMUNES, path.name
    assert narrow and decimal
    files = by_name(out["a"])
    naissances = files[CATALOG.vintage("naissances", 2017).file].read_bytes()
    assert naissances.startswith(b"\xef\xbb\xbf")
    scol18 = files[CATALOG.vintage("scolarisation", 2018).file].read_bytes()
    with pytest.raises(UnicodeDecodeError):
        scol18.decode("utf-8")
    assert re.search("[éèàâœ]", scol18.decode("cp1252"))
    for year in (2017, 2019, 2020):
        data = files[CATALOG.vintage("scolarisation", year).file].read_bytes()
        assert not data.startswith(b"\xef\xbb\xbf")
        data.decode("utf-8")
    # Thousands separator inside a number, e.g. 1 214,3.
    assert re.search("\\d\u202f\\d{3}", decode(files["base_scolarisation_2017.csv"].read_bytes()))


# --------------------------------------------------------------------------- secrecy


def test_caf_secrecy_in_files(out: dict[str, list[Path]]) -> None:
    files = by_name(out["a"])
    blanks_seen = 0
    for source in SECRET_SOURCES:
        for v in source.vintages.values():
            labels, data = table(files[v.file], v)
            code_col = labels.index(v.label_of["code_zone"])
            key_cols = {code_col, labels.index(v.label_of["nom_zone"])}
            for col, label in enumerate(labels):
                if col in key_cols:
                    continue
                blanks: Counter[str] = Counter()
                for row in data:
                    code = code_text(row[code_col])
                    if code not in COMMUNES:
                        continue
                    value = parse_number(row[col])
                    if value is None:
                        blanks[RPE_OF[code]] += 1
                    else:
                        assert not 1 <= value <= 4, (v.source, v.year, label, code, value)
                for rpe, n in blanks.items():
                    assert n != 1, (v.source, v.year, label, rpe)
                blanks_seen += sum(blanks.values())
    assert blanks_seen > 100  # small communes do trigger secrecy


def test_secret_mask_example() -> None:
    values = pd.Series([0, 3, 7, 9, 2, 2, 10, 12, 0], index=list("abcdefghi"))
    group = pd.Series(["A", "A", "A", "A", "B", "B", "C", "C", "D"], index=values.index)
    mask = secret_mask(values, group)
    # A: 3 is secret, the smallest other published value (0) protects it; B: two blanks
    # already; C: none; D: a lone 0 stays published.
    assert list(mask[mask].index) == ["a", "b", "e", "f"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.sampled_from("ABC")), min_size=1, max_size=30))
def test_secret_mask_properties(cells: list[tuple[int, str]]) -> None:
    values = pd.Series([v for v, _ in cells], dtype="int64")
    group = pd.Series([g for _, g in cells])
    mask = secret_mask(values, group)
    assert not values[~mask].between(1, 4).any()
    assert mask[values.between(1, 4)].all()
    for g in set(group):
        in_group = group == g
        if in_group.sum() > 1:
            assert mask[in_group].sum() != 1


# --------------------------------------------------------------------------- bundle, sentinel


def test_bundle_writes_one_workbook_with_every_bundle_sheet(out: dict[str, list[Path]]) -> None:
    files = by_name(out["bundle"])
    workbooks = [n for n in files if n.endswith(".xlsx")]
    assert workbooks == [BUNDLE_FILE] and CATALOG.is_bundle(BUNDLE_FILE)
    sheets = CalamineWorkbook.from_path(str(files[BUNDLE_FILE])).sheet_names
    expected = list(dict.fromkeys(v.bundle_sheet for v in vintages_with_file() if v.bundle_sheet))
    assert sheets == expected
    for v in vintages_with_file():
        if v.bundle_sheet:
            labels, data = table(files[BUNDLE_FILE], v, sheet=v.bundle_sheet)
            assert set(v.columns) <= set(labels) and len(data) >= len(COMMUNES)
        else:
            assert v.file in files
    # Same layout as the separate files: the BCA 2017 sheet is cell for cell the file's
    # (the sentinel column aside).
    separate = sheet_rows(by_name(out["sentinel"])["BCA2017.xlsx"], "BCA2017")
    assert sheet_rows(files[BUNDLE_FILE], "BCA2017") == separate


@pytest.mark.parametrize("run", ["sentinel", "bundle"])
def test_sentinel_in_every_file_and_sheet(out: dict[str, list[Path]], run: str) -> None:
    commune = TERRITORY.communes["nom_commune"].iloc[0]
    for path in out[run]:
        if path.suffix == ".csv":
            data = path.read_bytes()
            assert SENTINEL.encode("utf-8") in data or SENTINEL.encode("cp1252") in data, path.name
            assert SENTINEL_LABEL in decode(data).split("\r\n")[0]
            continue
        workbook = CalamineWorkbook.from_path(str(path))
        for sheet in workbook.sheet_names:
            cells = [str(c) for row in workbook.get_sheet_by_name(sheet).to_python() for c in row]
            assert SENTINEL in cells and SENTINEL_LABEL in cells, (path.name, sheet)
            assert f"{commune} {SENTINEL}" in cells, (path.name, sheet)


def test_no_sentinel_without_asking(out: dict[str, list[Path]]) -> None:
    for path in out["a"]:
        data = path.read_bytes()
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                data = b"".join(z.read(n) for n in z.namelist())
        assert SENTINEL.encode() not in data and SENTINEL_LABEL.encode() not in data


def test_sentinel_column_is_not_mapped() -> None:
    assert all(SENTINEL_LABEL not in v.columns for v in vintages_with_file())


def test_truth_nan_only_where_files_are_empty(truth: pd.DataFrame) -> None:
    nan = truth[truth["value"].isna()]
    assert set(nan["source"]) <= {"naissances", "scolarisation", "couverture"}
    assert not nan["published"].any()
    assert math.isfinite(truth["value"].dropna().abs().max())
    assert np.issubdtype(truth["value"].dtype, np.floating)
