"""National scale: a synthetic France (about 34,900 communes in 101 departments, EPCIs
and RPE-like groups) written as a referential folder the pipeline can be pointed at."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pipeline.settings import Paths, project_paths

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
        if (path.is_file() and path.name not in REFERENTIAL_FILES
                and path.resolve() != (config_dir / path.name).resolve()):
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
