"""The statistical model of the territory (one table per commune and year, shared by
every source so that they agree), the CAF's secrecy rule as its files apply it, and the
values behind the files (`sample_truth`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.catalog import PUBLIABLE, Catalog, Source, Vintage, load_catalog
from pipeline.sample.quirks import (
    AGGREGATE_LEVELS,
    KEY_MEASURES,
    MISSING_CELLS_PER_FILE,
    MODEL_YEARS,
    TECHNICAL_POPULATION,
    TECHNICAL_ROWS,
)
from pipeline.settings import Paths
from pipeline.territory import Territory, load_territory

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
