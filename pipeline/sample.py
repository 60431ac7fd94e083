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
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.writer.excel import ExcelWriter

from pipeline.catalog import Catalog, Source, Vintage, load_catalog
from pipeline.settings import Paths
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
    for _, index in values.groupby(group.to_numpy(), sort=False).groups.items():
        if int(primary[index].sum()) == 1:
            others = values[index][~primary[index]].dropna()
            if len(others):
                mask[others.index[int(np.argmin(others.to_numpy()))]] = True
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
    years = sorted(set(MODEL_YEARS) | {v.year for v in catalog.all_vintages})
    model = simulate(codes, population, years, rng)

    # Empty cells of INSEE files: drawn per file, after the model, so that the model
    # does not depend on them.
    missing: set[tuple[str, int, str, str]] = set()
    for source in catalog.sources.values():
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
        group = communes["code_rpe"].to_numpy() if level == "rpe" else np.full(len(communes), s.territory.epci_code)
        needed = sorted(set(measures) | {x for m in measures if m in RATIOS for x in RATIOS[m]})
        sums = commune_values[needed].groupby(group, sort=False).sum()
        for ratio, (num, den) in RATIOS.items():
            if ratio in measures:
                sums[ratio] = np.round(sums[num] / sums[den].where(sums[den] > 0) * 100, 1)
        order = list(s.territory.rpe_names) if level == "rpe" else [s.territory.epci_code]
        sums = sums.reindex(order)
        names = [s.territory.rpe_names[c] for c in order] if level == "rpe" else [s.territory.epci_name]
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
    for source in s.catalog.sources.values():
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


def _title_block(source: Source, territory: Territory, years: Sequence[int], header_row: int) -> list[str | None]:
    notes = NOTES.get(source.id, {})
    lines: list[str | None] = [
        f"{source.title} - {_years_text(years)}",
        f"Champ : {territory.epci_name} ({territory.epci_short_name})"
        + (f", {notes['champ']}" if "champ" in notes else ""),
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
        for i, zone in frame.iterrows():
            code = zone["code"]
            row = rows.setdefault((year, code) if long_by_year else code, {})
            if source.id in NUMERIC_CODES and code.isdigit():
                code_cell: object = int(code)
            else:
                code_cell = code
            name = zone["name"]
            if sentinel is not None and code == sentinel_commune:
                name = f"{name} {sentinel}"
                row[SENTINEL_LABEL] = sentinel
            for lbl in key_labels:
                canonical = v.columns.get(lbl, "nom_zone")
                if lbl == v.year_column:
                    row[lbl] = datetime(year, 12, 31) if source.id in YEAR_AS_DATE else year
                else:
                    row[lbl] = code_cell if canonical == "code_zone" else name
            for lbl, m in zip(cell_labels, measures):
                if secret.at[i, m]:
                    row[lbl] = blank_text
                elif missing.at[i, m]:
                    row[lbl] = None
                else:
                    row[lbl] = _python(zone[m])
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


def _write_workbook(path: Path, sheets: Sequence[tuple[str, _Table]]) -> None:
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
             paths: Paths | None = None) -> list[Path]:
    """Write every file of every vintage of the catalog into `out_dir`; return the
    paths written, sorted.

    `bundle=True`: one workbook `BUNDLE_FILE` with one sheet per `bundle_sheet` instead of
    the separate workbooks (vintages without bundle_sheet, the INSEE CSVs, are still
    written as their own files). `sentinel`: written in an extra column `COMMENTAIRE`
    of every file/sheet and appended to one commune's name, to prove later that data
    were destroyed.
    """
    s = _build(seed, paths)
    if sentinel is not None and any(SENTINEL_LABEL in v.columns for v in s.catalog.all_vintages):
        raise ValueError(f"the catalog maps {SENTINEL_LABEL}: the sentinel column must stay unmapped")
    if bundle and not s.catalog.is_bundle(BUNDLE_FILE):
        raise ValueError(f"{BUNDLE_FILE} does not match the catalog's bundle file_regex")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    workbooks: dict[str, dict[str, list[Vintage]]] = {}  # file -> sheet -> vintages
    csvs: dict[str, list[Vintage]] = {}
    for source in s.catalog.sources.values():
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
