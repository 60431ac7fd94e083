"""The territory referential: communes, their RPE, and the EPCI.

Read from `config/territory.csv` (`code_commune;nom_commune;population_2021;code_rpe`),
`config/zones.yaml` (RPE names, EPCI code and name) and `config/commune_changes.csv`
(old commune code -> referential code). No commune code is written in the code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd
import yaml

from pipeline.settings import Paths, project_paths


class TerritoryError(ValueError):
    pass


@dataclass(frozen=True)
class Territory:
    communes: pd.DataFrame  # code_commune, nom_commune, population_2021, code_rpe
    rpe_names: dict[str, str]
    epci_code: str
    epci_name: str
    epci_short_name: str
    code_changes: dict[str, str] = field(default_factory=dict)
    # Zone levels below the commune (IRIS, quartiers...): convention art. 4 sets a
    # minimum of 100 allocataires for them. None in the CABBALR referential.
    infra_communal_levels: frozenset[str] = frozenset()

    @cached_property
    def commune_codes(self) -> frozenset[str]:
        return frozenset(self.communes["code_commune"])

    @cached_property
    def rpe_codes(self) -> frozenset[str]:
        return frozenset(self.rpe_names)

    def level_of(self, code: str) -> str | None:
        """`commune`, `rpe`, `epci`, or None for a code outside the territory."""
        if code in self.commune_codes:
            return "commune"
        if code in self.rpe_codes:
            return "rpe"
        if code == self.epci_code:
            return "epci"
        return None

    def zones(self) -> pd.DataFrame:
        """Every zone of the territory: level, zone_code, zone_name, parent_code."""
        communes = pd.DataFrame(
            {
                "level": "commune",
                "zone_code": self.communes["code_commune"],
                "zone_name": self.communes["nom_commune"],
                "parent_code": self.communes["code_rpe"],
            }
        )
        rpe = pd.DataFrame(
            {
                "level": "rpe",
                "zone_code": list(self.rpe_names),
                "zone_name": list(self.rpe_names.values()),
                "parent_code": self.epci_code,
            }
        )
        epci = pd.DataFrame(
            {"level": ["epci"], "zone_code": [self.epci_code], "zone_name": [self.epci_name], "parent_code": [None]}
        )
        return pd.concat([epci, rpe, communes], ignore_index=True)


def load_territory(paths: Paths | None = None) -> Territory:
    paths = paths or project_paths()
    try:
        communes = pd.read_csv(
            paths.territory, sep=";", dtype={"code_commune": str, "code_rpe": str}, encoding="utf-8"
        )
    except FileNotFoundError:
        raise TerritoryError(f"{paths.territory}: the territory referential is missing") from None
    expected = ["code_commune", "nom_commune", "population_2021", "code_rpe"]
    if list(communes.columns) != expected:
        raise TerritoryError(f"{paths.territory}: columns must be {';'.join(expected)}")
    communes["code_commune"] = communes["code_commune"].str.strip().str.zfill(5)
    if communes["code_commune"].duplicated().any():
        raise TerritoryError(f"{paths.territory}: a commune code appears twice")
    zones = yaml.safe_load(paths.zones.read_text(encoding="utf-8"))
    rpe_names = {str(k): str(v) for k, v in zones["rpe"].items()}
    unknown_rpe = sorted(set(communes["code_rpe"]) - set(rpe_names))
    if unknown_rpe:
        raise TerritoryError(f"{paths.territory}: RPE codes not named in {paths.zones.name}: {unknown_rpe}")
    changes: dict[str, str] = {}
    if paths.commune_changes.exists():
        table = pd.read_csv(paths.commune_changes, sep=";", dtype=str, comment="#")
        changes = dict(zip(table["ancien_code"].str.zfill(5), table["nouveau_code"].str.zfill(5)))
    epci = zones["epci"]
    return Territory(
        communes=communes,
        rpe_names=rpe_names,
        epci_code=str(epci["code"]),
        epci_name=str(epci["name"]),
        epci_short_name=str(epci.get("short_name", epci["name"])),
        code_changes=changes,
        infra_communal_levels=frozenset(map(str, zones.get("infra_communal_levels") or [])),
    )
