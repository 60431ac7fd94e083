"""Deterministic sample data: fake source files shaped like the ones the CAF sends.

What belongs here:
- a small statistical model of the territory (births, allocataires, children,
  childminders, childcare places...) per commune and year, drawn once from
  `numpy.random.default_rng(seed)` and shared by every source, so that sources agree;
- the CAF secrecy rule as the files apply it (values 1-4 blanked, then complementary
  blanks so that no blank can be recomputed from its RPE row);
- the quirks of the real files described in `shared/docs/source-formats.md` (title
  blocks and notes, codes stored as numbers, technical rows, RPE/EPCI total rows,
  unmapped extra columns, CSV encodings, thousands separators, decimal commas...);
- the writers of those workbooks and CSV files.

What does not belong here:
- where each table sits and how its columns are named: `config/catalog.yaml`, read
  through `pipeline.catalog`. Every file name, sheet, header row and mapped column
  label written here comes from the catalog, so editing the catalog changes the files;
- the territory (communes, RPE, EPCI): `config/territory.csv` and `config/zones.yaml`;
- reading files back: that is the ingest side's job.

`generate()` writes the files, `sample_truth()` returns the values behind them. The
values are random draws of plausible magnitude: no real personal data.

Two scales. `scale="cabbalr"` (default): the project's referential (`config/`), 100
communes. `scale="national"`: a synthetic France (`national_referential()`: about 34,900
communes, most under 500 inhabitants, in 101 departments, about 1,250 EPCIs and RPE-like
groups inside each EPCI), written as a referential folder (`territory.csv` with a
`code_epci` column, `zones.yaml` listing the EPCIs, the other config files copied) that
`CAF_CONFIG_DIR` can point to, then files of the same shapes from the same catalog.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.writer.excel import ExcelWriter

from pipeline.catalog import PUBLIABLE, Catalog, Source, Vintage, load_catalog
from pipeline.settings import Paths, project_paths
from pipeline.territory import Territory, load_territory

# Name of the single workbook written in bundle mode; must match the catalog's bundle regex.
BUNDLE_FILE = "convention_caf_cabbalr.xlsx"
# Extra column carrying the sentinel string; never mapped in the catalog.
SENTINEL_LABEL = "COMMENTAIRE"
# Every timestamp that ends up in a file: no current time anywhere, so that the same
# seed gives byte-identical files.
FIXED_TIME = datetime(2022, 9, 1, 9, 0, 0)

KEY_MEASURES = ("code_zone", "nom_zone")
# Years the model always covers (the convention's study period); catalog years are added.
MODEL_YEARS = range(2017, 2022)


# ---------------------------------------------------------------------------------------
# Quirks of the real files. Only what the catalog cannot say lives here.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtraColumn:
    """A column present in the real files but not mapped by the catalog."""

    label: str  # may contain {yy}: the two-digit year of the vintage
    measure: str  # column of the statistical model
    first_year: int = 0


EXTRA_COLUMNS: dict[str, tuple[ExtraColumn, ...]] = {
    "bca": (
        ExtraColumn("NB_Enfants_3_5_ans", "enfants_3_5_ans"),
        ExtraColumn("AEEH_6A11", "aeeh_6_11_ans"),
        # The CMG breakdown by mode of care appears in 2020 (source-formats.md).
        ExtraColumn("ALL_CMG_ASMA", "allocataires_cmg_asma", first_year=2020),
        ExtraColumn("ALL_CMG_DOM", "allocataires_cmg_dom", first_year=2020),
    ),
    "scolarisation": (
        ExtraColumn("P{yy}_POP0205", "enfants_2_5_ans"),
        ExtraColumn("P{yy}_SCOL0205", "enfants_2_5_ans_scolarises"),
    ),
}

# A CSV vintage whose catalog entry maps no name column (scolarisation 2018) still carries
# the commune names, under the spelling of INSEE's IRIS-level files: the Windows-1252
# encoding of that file then matters (accented names), while the ingest, following the
# catalog, reads no names from it.
CSV_NAME_FALLBACK_LABEL = "LIBCOM"

# Rows that are not zones (codes listed in the catalog's technical_codes). "every": in
# every vintage of the source; "last": only in its last vintage (one sheet).
TECHNICAL_ROWS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "bca": ("every", (("99999", "Résidents à l'étranger"), ("XXXXX", "Commune inconnue"))),
    "bcecpaj": ("last", (("XX", "Non ventilé"),)),
}
# Population of the pseudo-communes behind technical rows: small values.
TECHNICAL_POPULATION = (60, 250)

# Total rows after the communes, by producer: the CAF adds its RPE and EPCI rows, the
# Cnaf coverage file one EPCI row, INSEE files hold communes only.
AGGREGATE_LEVELS: dict[str, tuple[str, ...]] = {"CAF": ("rpe", "epci"), "Cnaf": ("epci",)}
# Commune (and EPCI) codes stored as numbers, the leading-zero-losing way.
NUMERIC_CODES = frozenset({"bcecpaj"})
# Text standing in a blanked cell; sources not listed leave the cell empty.
SECRET_CELL: dict[str, str] = {"bcecpaj": "s"}
# Year column of long files written as a date (31 December) rather than an integer.
YEAR_AS_DATE = frozenset({"couverture"})
# CSV encodings when the catalog names none: (source, year or None for any year).
CSV_ENCODING: dict[tuple[str, int | None], str] = {
    ("naissances", None): "utf-8-sig",
    ("scolarisation", 2018): "cp1252",
}
# INSEE files leave one or two cells empty per file (missing, not secret).
MISSING_CELLS_PER_FILE: dict[str, tuple[int, int]] = {"INSEE": (1, 2)}

# Lines of the title block and of the notes under the table, per source.
NOTES: dict[str, dict[str, str]] = {
    "bca": {
        "champ": "allocataires payés au titre du mois de décembre",
        "source": "Source : Cnaf - BCA {years}, Caf du Pas-de-Calais",
        "lecture": "Lecture : NB_Allocataires est le nombre de foyers allocataires de la commune.",
    },
    "bcecpaj": {
        "champ": "assistants maternels déclarés par des particuliers employeurs",
        "source": "Source : Cnaf - Cntpaje (Pajemploi), BCECPAJ {years}",
        "lecture": "Lecture : un assistant maternel est actif s'il a été déclaré au moins un mois.",
    },
    "couverture": {
        "champ": "places d'accueil formel pour 100 enfants de moins de 3 ans, au 31 décembre",
        "source": "Source : Cnaf - taux de couverture global (TCG) {years}",
        "lecture": "Lecture : le taux peut dépasser 100 ; il n'est pas la somme de ses composantes arrondies.",
    },
    "places_a_creer": {
        "champ": "places théoriques d'accueil des moins de 3 ans à créer",
        "source": "Source : Caf du Pas-de-Calais - places à créer {years}",
        "lecture": "Lecture : nombre de places à créer pour atteindre l'objectif de couverture.",
    },
}
SECRET_NOTES = (
    "s : secret statistique",
    "Case vide : secret statistique (effectif de 1 à 4, ou masqué pour protéger une autre case)",
)


# ---------------------------------------------------------------------------------------
# Statistical model: one table per commune and year, shared by every source.
# ---------------------------------------------------------------------------------------

# Measures whose total is recomputed from the totals of two others, never summed.
RATIOS: dict[str, tuple[str, str]] = {"taux_couverture_global": ("places_accueil", "enfants_moins_3_ans_cnaf")}


def simulate(codes: Sequence[str], population_2021: np.ndarray, years: Sequence[int],
             rng: np.random.Generator) -> pd.DataFrame:
    """Every measure of the model, indexed by (year, code).

    Counts are Poisson draws around rates per inhabitant, and subsets are binomial draws
    from their whole, so that every inclusion (December ≤ year, active women ≤ women,
    schooled ≤ children...) holds by construction. Census values are weighted: one decimal.
    """
    n = len(codes)
    pop21 = np.asarray(population_2021, dtype=float)
    # Traits of a commune, fixed over the years: the sources must tell one story.
    growth = rng.uniform(-0.008, 0.008, n)
    birth_rate = rng.uniform(0.011, 0.013, n)
    under3_rate = np.clip(rng.normal(0.033, 0.003, n), 0.026, 0.040)
    alloc_rate = rng.uniform(0.17, 0.20, n)
    cmg_share = rng.uniform(0.20, 0.35, n)
    active_share = rng.uniform(0.55, 0.70, n)
    am_rate = rng.uniform(0.004, 0.007, n)
    am_december_share = rng.uniform(0.85, 0.95, n)
    am_55_share = rng.uniform(0.20, 0.30, n)
    schooled_share = rng.uniform(0.05, 0.15, n)
    offer_ratio = rng.uniform(0.3, 1.1, n)
    # At least one sizeable commune is covered above 100 %, so that nothing downstream
    # gets away with clamping the rate.
    sizeable = np.flatnonzero(pop21 * 0.033 >= 60)
    over = int(rng.choice(sizeable)) if len(sizeable) else int(np.argmax(pop21))
    offer_ratio[over] = rng.uniform(1.15, 1.25)

    frames = []
    for year in years:
        pop = np.rint(pop21 * (1 + growth) ** (year - 2021))
        children = rng.poisson(pop * under3_rate)  # every child under 3 (Cnaf, INSEE)
        caf_children = rng.binomial(children, 0.93)  # those in allocataire households
        cmg = rng.binomial(caf_children, cmg_share)
        women = rng.binomial(caf_children, 0.85)
        children_3_5 = rng.poisson(pop * under3_rate * 1.02)
        children_6_11 = rng.poisson(pop * 0.072)
        am_year = rng.poisson(pop * am_rate)
        aged_2 = np.round(children / 3 * rng.uniform(0.85, 1.15, n), 1)
        schooled_2 = np.minimum(np.round(aged_2 * schooled_share * rng.uniform(0.8, 1.2, n), 1), aged_2)
        aged_2_5 = np.round(aged_2 + children_3_5 * rng.uniform(0.95, 1.05, n), 1)
        schooled_2_5 = np.round(schooled_2 + (aged_2_5 - aged_2) * rng.uniform(0.96, 0.99, n), 1)
        places = np.rint(children * offer_ratio * rng.uniform(0.95, 1.05, n)).astype(int)
        with np.errstate(divide="ignore", invalid="ignore"):
            # No child: no rate (an empty cell, missing), not 0 and not infinity.
            rate = np.where(children > 0, np.round(places / np.maximum(children, 1) * 100, 1), np.nan)
        frames.append(pd.DataFrame({
            "year": year,
            "code": list(codes),
            "population": pop.astype(int),
            "naissances": rng.poisson(pop * birth_rate),
            "allocataires": rng.poisson(pop * alloc_rate),
            "enfants_moins_3_ans": caf_children,
            "enfants_moins_3_ans_cmg": cmg,
            "aeeh_0_2_ans": rng.binomial(caf_children, 0.003),
            "aeeh_3_5_ans": rng.binomial(children_3_5, 0.01),
            "femmes_enfants_moins_3_ans": women,
            "femmes_actives_enfants_moins_3_ans": rng.binomial(women, active_share),
            "enfants_3_5_ans": children_3_5,
            "aeeh_6_11_ans": rng.binomial(children_6_11, 0.015),
            "allocataires_cmg_asma": rng.binomial(cmg, 0.80),
            "allocataires_cmg_dom": rng.binomial(cmg, 0.03),
            "am_agrees_actifs_annee": am_year,
            "am_actifs_decembre": rng.binomial(am_year, am_december_share),
            "am_plus_55_ans": rng.binomial(am_year, am_55_share),
            "enfants_2_ans": aged_2,
            "enfants_moins_3_ans_scolarises": schooled_2,
            "enfants_2_5_ans": aged_2_5,
            "enfants_2_5_ans_scolarises": schooled_2_5,
            "enfants_moins_3_ans_cnaf": children,
            "places_accueil": places,
            "taux_couverture_global": rate,
            # Places to create to reach 55 places per 100 children; 0 where already reached.
            "places_theoriques_a_creer": np.maximum(np.rint(children * 0.55 - places), 0).astype(int),
        }))
    return pd.concat(frames, ignore_index=True).set_index(["year", "code"])


# ---------------------------------------------------------------------------------------
# Secrecy: which cells of a CAF file are blanked.
# ---------------------------------------------------------------------------------------


def secret_mask(values: pd.Series, group: pd.Series) -> pd.Series:
    """Cells a CAF file blanks, for one measure over the communes.

    Primary: values 1 to 4 (0 is published). Complementary: within a group (RPE), a
    single blank could be recomputed from the group's total row, so the smallest other
    published value of the group is blanked too (first in file order on ties).
    `values` and `group` share their index (one row per commune).
    """
    primary = values.between(1, 4)
    mask = primary.copy()
    keys = pd.Series(group.to_numpy(), index=values.index)
    lone = primary.groupby(keys.to_numpy(), sort=False).transform("sum").to_numpy() == 1
    candidates = pd.DataFrame({
        "group": keys.to_numpy(), "value": values.to_numpy(), "order": np.arange(len(values)),
    })[lone & ~primary.to_numpy() & values.notna().to_numpy()]
    if len(candidates):
        # smallest value of each group, the first in file order on ties (as np.argmin)
        first = candidates.sort_values(["group", "value", "order"], kind="stable").drop_duplicates("group")
        mask.iloc[first["order"].to_numpy()] = True
    return mask


# ---------------------------------------------------------------------------------------
# The sample: model + catalog + territory, and the zone tables behind each vintage.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sample:
    catalog: Catalog
    territory: Territory
    model: pd.DataFrame  # index (year, code), communes and technical pseudo-communes
    missing: frozenset[tuple[str, int, str, str]]  # (source, year, commune code, measure)


def sampled_sources(catalog: Catalog) -> list[Source]:
    """The sources the sample writes: those of commune-level zones (the model knows no
    IRIS) that are received under the convention (a source declared `publiable` is public
    open data, tested on fixtures of its published layout). Each year is written in its
    main form."""
    return [s for s in catalog.sources.values() if s.zone_level == "commune" and s.classification != PUBLIABLE]


def _measures(v: Vintage) -> list[str]:
    """Canonical measures of a vintage: every mapped column but keys and the year."""
    return [c for label, c in v.columns.items() if c not in KEY_MEASURES and label != v.year_column]


def _technical_rows(source: Source, year: int) -> tuple[tuple[str, str], ...]:
    when, rows = TECHNICAL_ROWS.get(source.id, ("every", ()))
    return rows if when == "every" or year == max(source.years) else ()


def _build(seed: int, paths: Paths | None) -> _Sample:
    catalog = load_catalog(paths)
    territory = load_territory(paths)
    rng = np.random.default_rng(seed)
    communes = territory.communes
    technical = sorted({code for _, rows in TECHNICAL_ROWS.values() for code, _ in rows})
    codes = list(communes["code_commune"]) + technical
    population = np.concatenate([
        communes["population_2021"].to_numpy(dtype=float),
        rng.integers(*TECHNICAL_POPULATION, size=len(technical)).astype(float),
    ])
    years = sorted(set(MODEL_YEARS) | {year for s in sampled_sources(catalog) for year in s.years})
    model = simulate(codes, population, years, rng)

    # Empty cells of INSEE files: drawn per file, after the model, so that the model
    # does not depend on them.
    missing: set[tuple[str, int, str, str]] = set()
    for source in sampled_sources(catalog):
        bounds = MISSING_CELLS_PER_FILE.get(source.producer)
        if not bounds:
            continue
        by_file: dict[str, list[Vintage]] = {}
        for year in source.years:
            by_file.setdefault(source.vintages[year].file, []).append(source.vintages[year])
        for vintages in by_file.values():
            cells = [(source.id, v.year, code, m) for v in vintages for code in communes["code_commune"]
                     for m in _measures(v)]
            k = min(int(rng.integers(bounds[0], bounds[1] + 1)), len(cells))
            missing.update(cells[i] for i in rng.choice(len(cells), size=k, replace=False))
    return _Sample(catalog, territory, model, frozenset(missing))


def _zone_frame(s: _Sample, source: Source, year: int, measures: Sequence[str]) -> pd.DataFrame:
    """True values of one vintage, one row per row of the file: columns level
    ('commune', 'technical', 'rpe', 'epci'), code, name, rpe, then the measures."""
    unknown = [m for m in measures if m not in s.model.columns]
    if unknown:
        raise ValueError(f"{source.id} {year}: the sample model has no measure {unknown}; "
                         f"add it to pipeline.sample.simulate")
    values = s.model.loc[year]
    communes = s.territory.communes
    commune_values = values.loc[list(communes["code_commune"])]
    frame = pd.DataFrame({
        "level": "commune",
        "code": communes["code_commune"].to_numpy(),
        "name": communes["nom_commune"].to_numpy(),
        "rpe": communes["code_rpe"].to_numpy(),
    })
    parts = [pd.concat([frame, commune_values[list(measures)].reset_index(drop=True)], axis=1)]
    technical = _technical_rows(source, year)
    if technical:
        tech = pd.DataFrame({"level": "technical", "code": [c for c, _ in technical],
                             "name": [n for _, n in technical], "rpe": None})
        parts.append(pd.concat([tech, values.loc[[c for c, _ in technical], list(measures)]
                                .reset_index(drop=True)], axis=1))
    for level in AGGREGATE_LEVELS.get(source.producer, ()):
        group = communes["code_rpe"].to_numpy() if level == "rpe" else s.territory.commune_epci.to_numpy()
        needed = sorted(set(measures) | {x for m in measures if m in RATIOS for x in RATIOS[m]})
        sums = commune_values[needed].groupby(group, sort=False).sum()
        for ratio, (num, den) in RATIOS.items():
            if ratio in measures:
                sums[ratio] = np.round(sums[num] / sums[den].where(sums[den] > 0) * 100, 1)
        zone_names = s.territory.rpe_names if level == "rpe" else s.territory.epcis
        order = list(zone_names)
        sums = sums.reindex(order)
        names = [zone_names[c] for c in order]
        head = pd.DataFrame({"level": level, "code": order, "name": names, "rpe": None})
        parts.append(pd.concat([head, sums[list(measures)].reset_index(drop=True)], axis=1))
    return pd.concat(parts, ignore_index=True)


def _blank_masks(s: _Sample, source: Source, year: int, frame: pd.DataFrame,
                 measures: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(secret, missing): cells blanked by CAF secrecy, cells missing at source."""
    secret = pd.DataFrame(False, index=frame.index, columns=list(measures))
    missing = secret.copy()
    is_commune = frame["level"] == "commune"
    for m in measures:
        if source.blank_means == "secret_at_source":
            secret.loc[is_commune, m] = secret_mask(frame.loc[is_commune, m], frame.loc[is_commune, "rpe"])
            # Technical rows get the primary rule only: they belong to no RPE.
            tech = frame["level"] == "technical"
            secret.loc[tech, m] = frame.loc[tech, m].between(1, 4)
        missing[m] = [(source.id, year, code, m) in s.missing for code in frame["code"]]
    return secret, missing


def _truth(s: _Sample) -> pd.DataFrame:
    parts = []
    for source in sampled_sources(s.catalog):
        for year in source.years:
            measures = _measures(source.vintages[year])
            frame = _zone_frame(s, source, year, measures)
            secret, missing = _blank_masks(s, source, year, frame, measures)
            keep = frame["level"] != "technical"
            for m in measures:
                value = frame[m].astype(float).where(~missing[m])
                parts.append(pd.DataFrame({
                    "source": source.id, "year": year, "level": frame.loc[keep, "level"],
                    "zone_code": frame.loc[keep, "code"], "measure": m, "value": value[keep],
                    "published": (~secret[m] & value.notna())[keep],
                }))
    return pd.concat(parts, ignore_index=True)


def sample_truth(seed: int = 2022, paths: Paths | None = None, *, with_published: bool = False) -> pd.DataFrame:
    """The values behind the files `generate(seed=seed)` writes, long: source, year,
    level ('commune', 'rpe', 'epci'), zone_code, measure (canonical name), value.

    Values are the real ones, before CAF secrecy (a blanked cell keeps its value here).
    NaN means the file has no value at all: a cell missing in an INSEE file, or a
    coverage rate of a commune without children. Only rows the files hold are listed
    (no technical rows; RPE/EPCI rows only where the producer writes them).
    `with_published=True` adds a boolean column `published`: the value is written as is.
    """
    truth = _truth(_build(seed, paths))
    return truth if with_published else truth.drop(columns="published")


# ---------------------------------------------------------------------------------------
# Tables: the cells of one sheet (or CSV file), from the zone frames and the quirks.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    title: list[str | None]  # exactly header_row - 1 lines
    header_row: int
    labels: list[str]
    rows: list[list[object]]
    notes: list[str]


def _python(value: object) -> object:
    """numpy scalar -> Python value; NaN -> None (an empty cell)."""
    if value is None:
        return None
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    return value


def _years_text(years: Sequence[int]) -> str:
    return str(years[0]) if len(years) == 1 else f"{min(years)}-{max(years)}"


def _scope(territory: Territory) -> str:
    if len(territory.epcis) == 1:
        return f"{territory.epci_name} ({territory.epci_short_name})"
    return f"{len(territory.epcis)} EPCI, {len(territory.communes)} communes"


def _title_block(source: Source, territory: Territory, years: Sequence[int], header_row: int) -> list[str | None]:
    notes = NOTES.get(source.id, {})
    lines: list[str | None] = [
        f"{source.title} - {_years_text(years)}",
        f"Champ : {_scope(territory)}" + (f", {notes['champ']}" if "champ" in notes else ""),
        f"Date d'extraction : 15/06/{max(years) + 1}",
    ]
    room = header_row - 1
    # Title, scope, date, then blank rows down to the header; short blocks drop the blank
    # first, then the last lines.
    return lines + [None] * (room - len(lines)) if room > len(lines) else lines[:room]


def _notes(source: Source, years: Sequence[int]) -> list[str]:
    notes = NOTES.get(source.id, {})
    lines = [notes.get("source", f"Source : {source.producer} - {source.title}").format(years=_years_text(years))]
    if "lecture" in notes:
        lines.append(notes["lecture"])
    if source.blank_means == "secret_at_source":
        lines.extend(SECRET_NOTES)
    return lines


def _build_table(s: _Sample, vintages: Sequence[Vintage], kind: str, sentinel: str | None) -> _Table:
    """One sheet or CSV file holding `vintages` (one, several years wide, or long by year)."""
    sources = {v.source for v in vintages}
    if len(sources) != 1:
        raise ValueError(f"one sheet holds several sources {sorted(sources)}: not supported by the sample")
    source = s.catalog.source(sources.pop())
    if len({v.header_row for v in vintages}) != 1:
        raise ValueError(f"{source.id}: vintages sharing a sheet have different header rows")
    long = {v.year_column is not None for v in vintages}
    if len(long) != 1:
        raise ValueError(f"{source.id}: a sheet mixes long-by-year and wide vintages")
    long_by_year = long.pop()
    sentinel_commune = s.territory.communes["code_commune"].iloc[0]

    labels: list[str] = []
    rows: dict[object, dict[str, object]] = {}  # row key -> label -> cell
    for v in sorted(vintages, key=lambda v: v.year):
        year = v.year
        key_labels = [lbl for lbl, c in v.columns.items() if c in KEY_MEASURES or lbl == v.year_column]
        measure_labels = [lbl for lbl in v.columns if lbl not in key_labels]
        extras = [(x.label.format(yy=f"{year % 100:02d}"), x.measure) for x in EXTRA_COLUMNS.get(source.id, ())
                  if year >= x.first_year]
        extras = [(lbl, m) for lbl, m in extras if lbl not in v.columns]
        if kind == "csv" and "nom_zone" not in v.columns.values():
            key_labels.append(CSV_NAME_FALLBACK_LABEL)
        measures = [v.columns[lbl] for lbl in measure_labels] + [m for _, m in extras]
        cell_labels = measure_labels + [lbl for lbl, _ in extras]
        for lbl in key_labels + cell_labels:
            if lbl not in labels:
                labels.append(lbl)
            elif lbl in cell_labels and not long_by_year:
                raise ValueError(f"{source.id}: column {lbl!r} holds two years in one sheet")

        frame = _zone_frame(s, source, year, measures)
        secret, missing = _blank_masks(s, source, year, frame, measures)
        blank_text = SECRET_CELL.get(source.id)
        # frame.values is what iterrows() reads, row by row: the same Python values
        column = {c: j for j, c in enumerate(frame.columns)}
        cells = [(lbl, column[m], secret[m].to_numpy(), missing[m].to_numpy()) for lbl, m in zip(cell_labels, measures)]
        for pos, zone in enumerate(frame.values):
            code = zone[column["code"]]
            row = rows.setdefault((year, code) if long_by_year else code, {})
            if source.id in NUMERIC_CODES and code.isdigit():
                code_cell: object = int(code)
            else:
                code_cell = code
            name = zone[column["name"]]
            if sentinel is not None and code == sentinel_commune:
                name = f"{name} {sentinel}"
                row[SENTINEL_LABEL] = sentinel
            for lbl in key_labels:
                canonical = v.columns.get(lbl, "nom_zone")
                if lbl == v.year_column:
                    row[lbl] = datetime(year, 12, 31) if source.id in YEAR_AS_DATE else year
                else:
                    row[lbl] = code_cell if canonical == "code_zone" else name
            for lbl, j, is_secret, is_missing in cells:
                if is_secret[pos]:
                    row[lbl] = blank_text
                elif is_missing[pos]:
                    row[lbl] = None
                else:
                    row[lbl] = _python(zone[j])
    if sentinel is not None:
        labels.append(SENTINEL_LABEL)
    years = sorted(v.year for v in vintages)
    header_row = vintages[0].header_row
    return _Table(
        title=_title_block(source, s.territory, years, header_row) if header_row > 1 else [],
        header_row=header_row,
        labels=labels,
        rows=[[row.get(lbl) for lbl in labels] for row in rows.values()],
        notes=_notes(source, years) if kind == "xlsx" else [],
    )


# ---------------------------------------------------------------------------------------
# Writers.
# ---------------------------------------------------------------------------------------


# Sheets with more rows than this are streamed (openpyxl write-only mode): the national
# sample's workbooks. Smaller ones, the CABBALR files among them, are written cell by cell
# as before (their bytes are pinned by the tests).
STREAM_ROWS = 5_000


def _write_workbook(path: Path, sheets: Sequence[tuple[str, _Table]]) -> None:
    if any(len(table.rows) > STREAM_ROWS for _, table in sheets):
        return _write_workbook_streamed(path, sheets)
    wb = Workbook()
    wb.remove(wb.active)
    for sheet_name, table in sheets:
        ws = wb.create_sheet(title=sheet_name)
        for r, line in enumerate(table.title, start=1):
            if line is not None:
                ws.cell(r, 1, line)
        for c, label in enumerate(table.labels, start=1):
            ws.cell(table.header_row, c, label)
        for r, row in enumerate(table.rows, start=table.header_row + 1):
            for c, value in enumerate(row, start=1):
                if value is None:
                    continue
                cell = ws.cell(r, c, value)
                if isinstance(value, datetime):
                    cell.number_format = "dd/mm/yyyy"
        # One blank row, then the notes, as in the CAF's Excel releases.
        first_note = table.header_row + len(table.rows) + 2
        for r, line in enumerate(table.notes, start=first_note):
            ws.cell(r, 1, line)
    wb.properties.creator = "Caf du Pas-de-Calais"
    wb.properties.lastModifiedBy = "Caf du Pas-de-Calais"
    wb.properties.created = FIXED_TIME
    wb.properties.modified = FIXED_TIME
    # openpyxl's save_workbook stamps the current time on the properties and zipfile on
    # every member: write through ExcelWriter, then re-zip with fixed member dates.
    buffer = io.BytesIO()
    ExcelWriter(wb, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED)).save()
    path.write_bytes(_fixed_zip(buffer.getvalue()))


def _write_workbook_streamed(path: Path, sheets: Sequence[tuple[str, _Table]]) -> None:
    """Same cells as `_write_workbook`, streamed row by row (constant memory, faster)."""
    wb = Workbook(write_only=True)
    for sheet_name, table in sheets:
        ws = wb.create_sheet(title=sheet_name)
        for line in table.title:
            ws.append([line])
        ws.append(table.labels)
        for row in table.rows:
            out: list[object] = []
            for value in row:
                if isinstance(value, datetime):
                    cell = WriteOnlyCell(ws, value)
                    cell.number_format = "dd/mm/yyyy"
                    value = cell
                out.append(value)
            ws.append(out)
        ws.append([])
        for line in table.notes:
            ws.append([line])
    wb.properties.creator = "Caf du Pas-de-Calais"
    wb.properties.lastModifiedBy = "Caf du Pas-de-Calais"
    wb.properties.created = FIXED_TIME
    wb.properties.modified = FIXED_TIME
    buffer = io.BytesIO()
    ExcelWriter(wb, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED)).save()
    path.write_bytes(_fixed_zip(buffer.getvalue()))


def _fixed_zip(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            member = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME.timetuple()[:6])
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o644 << 16
            dst.writestr(member, src.read(info.filename))
    return out.getvalue()


def _csv_field(value: object, thousands: str) -> str:
    """INSEE style: thousands separated by a narrow no-break space, decimal comma."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}".replace(",", thousands)
    if isinstance(value, float):
        return f"{value:,.1f}".replace(",", thousands).replace(".", ",")
    if isinstance(value, datetime):
        return value.strftime("%d/%m/%Y")
    text = str(value)
    if any(ch in text for ch in ';"\r\n'):
        text = '"' + text.replace('"', '""') + '"'
    return text


def _write_csv(path: Path, table: _Table, encoding: str) -> None:
    # Windows-1252 has no U+202F: such files use the no-break space U+00A0 instead.
    try:
        "\u202f".encode(encoding)
        thousands = "\u202f"
    except UnicodeEncodeError:
        thousands = "\u00a0"
    lines = [[line or ""] for line in table.title] + [table.labels] + table.rows
    text = "".join(";".join(_csv_field(v, thousands) for v in line) + "\r\n" for line in lines)
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise ValueError(f"{path.name}: text not encodable in {encoding} (the sentinel?): {exc}") from None
    path.write_bytes(data)


def _csv_encoding(vintages: Iterable[Vintage]) -> str:
    for v in vintages:
        if v.encoding:
            return v.encoding
    for v in vintages:
        for key in ((v.source, v.year), (v.source, None)):
            if key in CSV_ENCODING:
                return CSV_ENCODING[key]
    return "utf-8"


def _check_name(name: str) -> None:
    if any(ch in name for ch in "*?["):
        raise ValueError(f"catalog file {name!r} is a pattern: the sample needs a plain file name")


def generate(out_dir: Path, seed: int = 2022, *, bundle: bool = False, sentinel: str | None = None,
             paths: Paths | None = None, scale: str = "cabbalr", config_dir: Path | None = None,
             n_communes: int | None = None) -> list[Path]:
    """Write every file of every vintage of the catalog into `out_dir`; return the
    paths written, sorted.

    `bundle=True`: one workbook `BUNDLE_FILE` with one sheet per `bundle_sheet` instead of
    the separate workbooks (vintages without bundle_sheet, the INSEE CSVs, are still
    written as their own files). `sentinel`: written in an extra column `COMMENTAIRE`
    of every file/sheet and appended to one commune's name, to prove later that data
    were destroyed.

    `scale="national"`: first write a synthetic France's referential into `config_dir`
    (default: `config/` beside `out_dir`; the other config files are copied from
    `paths.config`), `n_communes` communes (default `NATIONAL_COMMUNES`), then the files
    for it. Point `CAF_CONFIG_DIR` (or `CAF_PROJECT_DIR`) at it to run the pipeline.
    """
    if scale == "national":
        out_dir = Path(out_dir)
        config_dir = Path(config_dir) if config_dir is not None else out_dir.parent / "config"
        write_national_referential(config_dir, seed, n_communes or NATIONAL_COMMUNES, paths=paths)
        paths = Paths(root=config_dir.parent, config=config_dir, raw=out_dir,
                      warehouse=config_dir.parent / "warehouse" / "warehouse.duckdb",
                      reports=config_dir.parent / "reports")
    elif scale != "cabbalr":
        raise ValueError(f"scale must be one of {SCALES}, not {scale!r}")
    elif n_communes is not None or config_dir is not None:
        raise ValueError("n_communes and config_dir apply to scale='national' only")
    s = _build(seed, paths)
    if sentinel is not None and any(SENTINEL_LABEL in v.columns for v in s.catalog.all_vintages):
        raise ValueError(f"the catalog maps {SENTINEL_LABEL}: the sentinel column must stay unmapped")
    if bundle and not s.catalog.is_bundle(BUNDLE_FILE):
        raise ValueError(f"{BUNDLE_FILE} does not match the catalog's bundle file_regex")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    workbooks: dict[str, dict[str, list[Vintage]]] = {}  # file -> sheet -> vintages
    csvs: dict[str, list[Vintage]] = {}
    for source in sampled_sources(s.catalog):
        for year in source.years:
            v = source.vintages[year]
            if bundle and v.bundle_sheet:
                workbooks.setdefault(BUNDLE_FILE, {}).setdefault(v.bundle_sheet, []).append(v)
                continue
            _check_name(v.file)
            suffix = Path(v.file).suffix.lower()
            if suffix == ".csv":
                csvs.setdefault(v.file, []).append(v)
            elif suffix == ".xlsx":
                workbooks.setdefault(v.file, {}).setdefault(v.sheet or "Feuil1", []).append(v)
            else:
                raise ValueError(f"{v.file}: the sample writes .xlsx and .csv files only")

    written = []
    for name, sheets in workbooks.items():
        tables = [(sheet, _build_table(s, vs, "xlsx", sentinel)) for sheet, vs in sheets.items()]
        _write_workbook(out_dir / name, tables)
        written.append(out_dir / name)
    for name, vs in csvs.items():
        _write_csv(out_dir / name, _build_table(s, vs, "csv", sentinel), _csv_encoding(vs))
        written.append(out_dir / name)
    return sorted(written)


# ---------------------------------------------------------------------------------------
# National scale: a synthetic France and its referential.
# ---------------------------------------------------------------------------------------

SCALES = ("cabbalr", "national")
NATIONAL_COMMUNES = 34_900
# Metropolitan departments (Corsica as 2A and 2B) and the five overseas ones: 101.
METRO_DEPARTMENTS = tuple(f"{d:02d}" for d in range(1, 96) if d != 20) + ("2A", "2B")
OVERSEAS_DEPARTMENTS = ("971", "972", "973", "974", "976")
# Sizes: median commune about 450 inhabitants (more than half under 500, as in France),
# a long tail up to the big cities; overseas communes are few and large.
COMMUNE_MEDIAN, COMMUNE_SIGMA, COMMUNE_MAX = 450.0, 1.7, 2_200_000
OVERSEAS_MEDIAN, OVERSEAS_SIGMA = 15_000.0, 0.8
COMMUNES_PER_EPCI = 28  # 34,900 communes / about 1,250 EPCIs
INHABITANTS_PER_RPE = 12_000  # one RPE-like group per ~12,000 inhabitants of an EPCI
# Files the national referential replaces; every other file of config/ is copied.
REFERENTIAL_FILES = ("territory.csv", "zones.yaml", "commune_changes.csv")
# Name parts of the synthetic communes (Windows-1252 encodable: the CSV of 2018).
_NAME_START = ("Saint-", "Sainte-", "Le ", "La ", "Les ", "", "", "", "")
_NAME_ROOT = ("Val", "Mont", "Bois", "Champ", "Fontaine", "Ville", "Roche", "Pré", "Étang", "Château",
              "Mesnil", "Clair", "Beau", "Haute", "Neuve", "Lande", "Grand", "Marais", "Côte", "Bourg")
_NAME_END = ("", "", "ville", "court", "court", "y", "ac", "ières", "-sur-Rivière", "-en-Forêt", "-lès-Bains")


def _split(n: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """Sizes of `parts` contiguous chunks (each at least 1) of `n` items."""
    parts = max(1, min(parts, n))
    cuts = np.sort(rng.choice(np.arange(1, n), size=parts - 1, replace=False)) if parts > 1 else np.array([], int)
    return np.diff(np.concatenate([[0], cuts, [n]]))


def national_referential(seed: int = 2022, n_communes: int = NATIONAL_COMMUNES) -> tuple[pd.DataFrame, dict]:
    """A synthetic France: (territory frame, zones document).

    The frame has the columns of `config/territory.csv` plus `code_epci`; the zones
    document is what `zones.yaml` holds (`epcis`: code -> name, `rpe`: code -> name).
    Communes are numbered within their department (INSEE-like codes `62001`, `2A001`,
    `97101`); each department is cut into EPCIs of about `COMMUNES_PER_EPCI` contiguous
    communes, each EPCI into RPE-like groups of about `INHABITANTS_PER_RPE`.
    """
    if n_communes < 1:
        raise ValueError("n_communes must be at least 1")
    rng = np.random.default_rng([seed, 101])
    departments = list(METRO_DEPARTMENTS + OVERSEAS_DEPARTMENTS)[: max(1, min(101, n_communes // 10))]
    overseas = np.array([d.startswith("97") for d in departments])
    weights = rng.lognormal(0.0, 0.45, len(departments)) * np.where(overseas, 0.08, 1.0)
    capacity = np.where(overseas, 99, 999)  # INSEE-like codes: 3 digits, 2 overseas
    if n_communes > capacity.sum():
        raise ValueError(f"at most {int(capacity.sum())} communes")
    counts = np.minimum(capacity, np.maximum(1, np.floor(weights / weights.sum() * n_communes))).astype(int)
    while counts.sum() != n_communes:  # adjust one commune at a time, largest departments first
        step = 1 if counts.sum() < n_communes else -1
        room = (counts < capacity) if step > 0 else (counts > 1)
        counts[int(np.argmax(np.where(room, weights, -np.inf)))] += step
    rows = []
    epcis: dict[str, str] = {}
    rpes: dict[str, str] = {}
    for d_index, (dep, n, is_overseas) in enumerate(zip(departments, counts, overseas)):
        if is_overseas:
            pop = rng.lognormal(np.log(OVERSEAS_MEDIAN), OVERSEAS_SIGMA, n)
        else:
            pop = rng.lognormal(np.log(COMMUNE_MEDIAN), COMMUNE_SIGMA, n)
        pop = np.clip(np.rint(pop), 1, COMMUNE_MAX).astype(int)
        codes = [f"{dep}{i + 1:02d}" if is_overseas else f"{dep}{i + 1:03d}" for i in range(n)]
        names = [
            f"{_NAME_START[a]}{_NAME_ROOT[b]}{_NAME_END[c]}".strip()
            for a, b, c in zip(rng.integers(0, len(_NAME_START), n), rng.integers(0, len(_NAME_ROOT), n),
                               rng.integers(0, len(_NAME_END), n))
        ]
        start = 0
        for e_index, size in enumerate(_split(n, round(n / COMMUNES_PER_EPCI), rng)):
            members = slice(start, start + size)
            epci = f"2{d_index + 1:03d}{e_index + 1:05d}"
            epci_pop = int(pop[members].sum())
            kind = "Métropole" if epci_pop >= 400_000 else "CU" if epci_pop >= 250_000 else \
                "CA" if epci_pop >= 50_000 else "CC"
            epcis[epci] = f"{kind} {names[start]} ({dep}-{e_index + 1})"
            r_start = start
            for r_index, r_size in enumerate(_split(size, round(epci_pop / INHABITANTS_PER_RPE), rng)):
                rpe = f"RPE-{epci}-{r_index + 1:02d}"
                rpes[rpe] = f"RPE {names[r_start]} ({dep}-{e_index + 1}.{r_index + 1})"
                for i in range(r_start, r_start + r_size):
                    rows.append((codes[i], names[i], int(pop[i]), rpe, epci))
                r_start += r_size
            start += size
    territory = pd.DataFrame(rows, columns=["code_commune", "nom_commune", "population_2021", "code_rpe", "code_epci"])
    zones = {"epcis": epcis, "rpe": rpes, "infra_communal_levels": []}
    return territory, zones


def write_national_referential(config_dir: Path, seed: int = 2022, n_communes: int = NATIONAL_COMMUNES,
                               paths: Paths | None = None) -> Path:
    """Write the synthetic France's referential into `config_dir`: territory.csv,
    zones.yaml and an empty commune_changes.csv, beside a copy of every other file of
    the project's config (catalog, indicators, disclosure policy, study...)."""
    config_dir = Path(config_dir)
    source = (paths or project_paths()).config
    config_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.is_file() and path.name not in REFERENTIAL_FILES and path.resolve() != (config_dir / path.name).resolve():
            shutil.copy2(path, config_dir / path.name)
    territory, zones = national_referential(seed, n_communes)
    territory.to_csv(config_dir / "territory.csv", sep=";", index=False, encoding="utf-8", lineterminator="\n")
    header = (f"# Synthetic France written by pipeline.sample (scale national, seed {seed}, "
              f"{len(territory)} communes): no real zone.\n"
              "# EPCIs (code -> name) and RPE-like groups; each commune names its RPE and EPCI in territory.csv.\n")
    (config_dir / "zones.yaml").write_text(
        header + yaml.safe_dump(zones, allow_unicode=True, sort_keys=False, width=200), encoding="utf-8")
    (config_dir / "commune_changes.csv").write_text("ancien_code;nouveau_code;date_effet;motif\n", encoding="utf-8")
    return config_dir
