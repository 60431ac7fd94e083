"""Test data for the report tests: `published.indicators` frames built from the territory
and the indicator definitions, and a DuckDB file holding them (no test in this module).

`published.indicators` is the contract with the disclosure stage: level, zone_code,
zone_name, parent_code, indicator, year, value (NULL unless published), status
('published' | 'masked' | 'not_available'), study_id.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline.indicators import IndicatorSet, load_indicators
from pipeline.territory import Territory, load_territory

STUDY_ID = "cabbalr-caf62-am-2022"
COLUMNS = ["level", "zone_code", "zone_name", "parent_code", "indicator", "year", "value", "status", "study_id"]
# A value that must never reach a report: written in confidential.* tables of test warehouses.
SENTINEL = 987654.321


def full_published(seed: int = 7, territory: Territory | None = None, indicators: IndicatorSet | None = None,
                   masked_share: float = 0.12, not_available_share: float = 0.04) -> pd.DataFrame:
    """Every zone x indicator x year of the definitions, realistic values, some masked
    (small communes more often) and some not available."""
    territory = territory or load_territory()
    indicators = indicators or load_indicators()
    rng = np.random.default_rng(seed)
    communes = territory.communes
    rows = []
    for ind in indicators.indicators:
        for year in ind.years:
            commune_values = {}
            for code, name, pop, rpe in zip(communes["code_commune"], communes["nom_commune"],
                                            communes["population_2021"], communes["code_rpe"]):
                if ind.kind == "ratio":
                    value = float(np.round(rng.uniform(20, 95), 6))
                elif ind.id == "enfants_moins_3_ans_scolarises":
                    value = float(np.round(pop * rng.uniform(0.001, 0.006), 2))
                else:
                    value = float(max(0, round(pop * rng.uniform(0.002, 0.03))))
                p_mask = masked_share * (2.5 if pop < 1500 else 0.5)
                draw = rng.uniform()
                status = ("masked" if draw < p_mask
                          else "not_available" if draw < p_mask + not_available_share else "published")
                commune_values[code] = (value, status)
                rows.append(("commune", code, name, rpe, ind.id, year,
                             value if status == "published" else None, status))
            for rpe_code, rpe_name in territory.rpe_names.items():
                members = communes.loc[communes["code_rpe"] == rpe_code, "code_commune"]
                values = [commune_values[c][0] for c in members]
                value = float(np.mean(values)) if ind.kind == "ratio" else float(sum(values))
                draw = rng.uniform()
                status = "masked" if draw < 0.08 else "not_available" if draw < 0.12 else "published"
                rows.append(("rpe", rpe_code, rpe_name, territory.epci_code, ind.id, year,
                             value if status == "published" else None, status))
            total = [v for v, _ in commune_values.values()]
            value = float(np.mean(total)) if ind.kind == "ratio" else float(sum(total))
            rows.append(("epci", territory.epci_code, territory.epci_name, None, ind.id, year, value, "published"))
    frame = pd.DataFrame(rows, columns=COLUMNS[:-1])
    frame["study_id"] = STUDY_ID
    return frame.astype({"year": "int32", "value": "float64"})


def tiny_published(territory: Territory | None = None) -> pd.DataFrame:
    """Three rows: the EPCI published, an RPE masked, a commune not available."""
    territory = territory or load_territory()
    rpe_code, rpe_name = next(iter(territory.rpe_names.items()))
    commune = territory.communes[territory.communes["code_rpe"] == rpe_code].iloc[0]
    rows = [
        ("epci", territory.epci_code, territory.epci_name, None, "naissances", 2019, 1234.0, "published", STUDY_ID),
        ("rpe", rpe_code, rpe_name, territory.epci_code, "naissances", 2019, None, "masked", STUDY_ID),
        ("commune", commune["code_commune"], commune["nom_commune"], rpe_code, "naissances", 2019, None,
         "not_available", STUDY_ID),
    ]
    return pd.DataFrame(rows, columns=COLUMNS).astype({"year": "int32", "value": "float64"})


def write_warehouse(path: Path, published: pd.DataFrame, with_confidential: bool = True) -> Path:
    """A DuckDB file with published.indicators and, beside it, confidential tables holding
    SENTINEL (a report that read them would show it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS published")
        con.register("_p", published)
        con.execute("CREATE OR REPLACE TABLE published.indicators AS SELECT * FROM _p")
        con.unregister("_p")
        if with_confidential:
            secret = published.copy()
            secret["value"] = SENTINEL
            secret["status"] = "ok"
            con.execute("CREATE SCHEMA IF NOT EXISTS confidential")
            con.register("_s", secret)
            con.execute("CREATE OR REPLACE TABLE confidential.indicators AS SELECT * FROM _s")
            con.unregister("_s")
    finally:
        con.close()
    return path


def sentinel_texts() -> list[str]:
    """How SENTINEL could be written in a report."""
    return ["987654", "987 654", "987\u202f654", "987\u00a0654", "987,654", "987654.321", "987654,3"]


def synthetic_geojson(path: Path, territory: Territory | None = None, drop: tuple[str, ...] = (),
                      codes: dict[str, str] | None = None) -> Path:
    """A GeoJSON of square communes on a grid (one row of squares per RPE), for tests that
    must not depend on a real outline file. `drop`: codes left without outline; `codes`:
    code written in the file instead of the referential's (a former code)."""
    import json

    territory = territory or load_territory()
    features = []
    for row, rpe in enumerate(territory.rpe_names):
        members = territory.communes.loc[territory.communes["code_rpe"] == rpe, "code_commune"]
        for col, code in enumerate(members):
            if code in drop:
                continue
            x, y = 2.3 + col * 0.02, 50.6 - row * 0.02
            ring = [[x, y], [x + 0.02, y], [x + 0.02, y + 0.02], [x, y + 0.02], [x, y]]
            features.append({
                "type": "Feature",
                "properties": {"code": (codes or {}).get(code, code), "nom": code},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            })
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path
