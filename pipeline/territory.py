"""The territory referential: communes, their RPE, and the EPCI(s).

Read from `config/territory.csv` (`code_commune;nom_commune;population_2021;code_rpe`,
plus an optional last column `code_epci`), `config/zones.yaml` (RPE names, EPCI code and
name, and optionally a list of EPCIs) and `config/commune_changes.csv` (old commune
code -> referential code). No commune code is written in the code.

One EPCI (the CABBALR): `zones.yaml` names it under `epci` and `territory.csv` has no
`code_epci` column. Several EPCIs (another department, France): `zones.yaml` lists them
under `epcis` (code -> name) and each commune names its EPCI in `code_epci`; every RPE
lies inside one EPCI. The hierarchy stays commune -> RPE -> EPCI; departments (derived
from the commune code) are a unit of partitioning only, never a published level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd

from pipeline.config_models import territory as model
from pipeline.config_models.base import read_yaml, validated
from pipeline.config_models.territory import check_rows
from pipeline.errors import PipelineError
from pipeline.settings import Paths, project_paths


class TerritoryError(PipelineError, ValueError):
    pass


@dataclass(frozen=True)
class Territory:
    communes: pd.DataFrame  # code_commune, nom_commune, population_2021, code_rpe[, code_epci]
    rpe_names: dict[str, str]
    # The EPCI of a one-EPCI referential; with several, the first one listed.
    epci_code: str
    epci_name: str
    epci_short_name: str
    code_changes: dict[str, str] = field(default_factory=dict)
    # Zone levels below the commune (IRIS, quartiers...): convention art. 4 sets a
    # minimum of 100 allocataires for them. None in the CABBALR referential.
    infra_communal_levels: frozenset[str] = frozenset()
    # Every EPCI (code -> name) and the EPCI of each RPE; empty: the one EPCI above.
    epci_names: dict[str, str] = field(default_factory=dict)
    rpe_epci: dict[str, str] = field(default_factory=dict)

    @cached_property
    def epcis(self) -> dict[str, str]:
        """Every EPCI of the referential, code -> name (one for the CABBALR)."""
        return dict(self.epci_names) or {self.epci_code: self.epci_name}

    @cached_property
    def epci_codes(self) -> frozenset[str]:
        return frozenset(self.epcis)

    def epci_of_rpe(self, rpe_code: str) -> str:
        return self.rpe_epci.get(rpe_code, self.epci_code)

    @cached_property
    def commune_epci(self) -> pd.Series:
        """The EPCI of each commune, aligned with `communes`."""
        return self.communes["code_rpe"].map(self.epci_of_rpe)

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
        if code in self.epci_codes:
            return "epci"
        return None

    def departement_of(self, commune_code: str) -> str:
        return departement_of(commune_code)

    def zones(self, infra: pd.DataFrame | None = None) -> pd.DataFrame:
        """Every zone of the territory: level, zone_code, zone_name, parent_code.

        `infra`: zones below the commune (IRIS), as `infra_zones` gives them (level,
        zone_code, zone_name, parent_code: the commune); only those of a level listed in
        `infra_communal_levels` and lying in a commune of the territory are kept. None or
        empty: the communes, RPE and EPCI alone."""
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
                "parent_code": [self.epci_of_rpe(code) for code in self.rpe_names],
            }
        )
        epci = pd.DataFrame(
            {"level": "epci", "zone_code": list(self.epcis), "zone_name": list(self.epcis.values()),
             "parent_code": [None] * len(self.epcis)}
        )
        parts = [epci, rpe, communes]
        if infra is not None and len(infra):
            below = infra[["level", "zone_code", "zone_name", "parent_code"]]
            below = below[below["level"].isin(self.infra_communal_levels)
                          & below["parent_code"].isin(self.commune_codes)]
            parts.append(below.sort_values(["parent_code", "zone_code"]))
        return pd.concat(parts, ignore_index=True)


def infra_zones(frame: pd.DataFrame, territory: Territory) -> pd.DataFrame:
    """The zones below the commune found in `frame` (rows with level, zone_code,
    parent_code[, zone_name]: staging rows, or confidential / published indicators).

    Kept: rows of a level listed in `infra_communal_levels`, inside a commune of the
    territory, of a commune cut into at least two such zones (INSEE codes a commune not
    cut into IRIS as one IRIS, its code + 0000: that IRIS is the commune itself, not a
    zone below it). The name is the latest one given (`zone_name`), else the code.
    Columns: level, zone_code, zone_name, parent_code.
    """
    columns = ["level", "zone_code", "zone_name", "parent_code"]
    if frame is None or not len(frame) or not territory.infra_communal_levels:
        return pd.DataFrame(columns=columns, dtype="object")
    rows = frame[frame["level"].isin(territory.infra_communal_levels)].copy()
    if "zone_name" not in rows.columns:
        rows["zone_name"] = None
    rows = rows[rows["parent_code"].isin(territory.commune_codes)]
    names = rows.dropna(subset=["zone_name"]).drop_duplicates(["level", "zone_code"], keep="last")
    zones = rows.drop_duplicates(["level", "zone_code"])[["level", "zone_code", "parent_code"]]
    zones = zones.merge(names[["level", "zone_code", "zone_name"]], on=["level", "zone_code"], how="left")
    zones["zone_name"] = zones["zone_name"].where(zones["zone_name"].notna(), zones["zone_code"])
    per_commune = zones.groupby(["level", "parent_code"], observed=True)["zone_code"].transform("size")
    zones = zones[per_commune >= 2]
    return zones[columns].sort_values(["parent_code", "zone_code"]).reset_index(drop=True).astype("object")


def departement_of(commune_code: str) -> str:
    """The department of an INSEE commune code: 3 characters overseas (97x), else 2 (2A, 62...)."""
    return commune_code[:3] if commune_code.startswith("97") else commune_code[:2]


def _rows(frame: pd.DataFrame) -> list[dict]:
    """The rows of a CSV file as the models read them: an empty cell is None."""
    if frame.isna().to_numpy().any():
        frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict("records")


def load_territory(paths: Paths | None = None) -> Territory:
    paths = paths or project_paths()
    try:
        communes = pd.read_csv(
            paths.territory, sep=";", dtype={"code_commune": str, "code_rpe": str, "code_epci": str}, encoding="utf-8"
        )
    except FileNotFoundError:
        raise TerritoryError(f"{paths.territory}: the territory referential is missing") from None
    communes["code_commune"] = communes["code_commune"].str.strip().str.zfill(5)
    check_rows(model.CommuneRow, list(communes.columns), _rows(communes), str(paths.territory), TerritoryError)
    if communes["code_commune"].duplicated().any():
        raise TerritoryError(f"{paths.territory}: a commune code appears twice")
    zones = read_yaml(paths.zones, TerritoryError, "the zones above the commune (RPE, EPCI) are missing")
    zones = validated(model.ZonesFile, zones, paths.zones, TerritoryError)
    unknown_rpe = sorted(set(communes["code_rpe"]) - set(zones.rpe))
    if unknown_rpe:
        raise TerritoryError(f"{paths.territory}: RPE codes not named in {paths.zones.name}: {unknown_rpe}")
    changes: dict[str, str] = {}
    if paths.commune_changes.exists():
        table = pd.read_csv(paths.commune_changes, sep=";", dtype=str, comment="#")
        for column in ("ancien_code", "nouveau_code"):
            if column in table.columns:
                table[column] = table[column].str.strip().str.zfill(5)
        check_rows(model.CommuneChangeRow, list(table.columns), _rows(table), str(paths.commune_changes),
                   TerritoryError)
        changes = dict(zip(table["ancien_code"], table["nouveau_code"]))
    epci_names, rpe_epci = _epcis(paths, communes, zones)
    epci = zones.epci
    if epci is None and not epci_names:
        raise TerritoryError(f"{paths.zones}: names no EPCI (`epci`, or a list under `epcis`)")
    epci_code = epci.code if epci else next(iter(epci_names))
    epci_name = (epci.name if epci else None) or epci_names.get(epci_code, epci_code)
    if epci_names and epci_code not in epci_names:
        raise TerritoryError(f"{paths.zones}: the EPCI {epci_code} is not listed under `epcis`")
    return Territory(
        communes=communes,
        rpe_names=dict(zones.rpe),
        epci_code=epci_code,
        epci_name=epci_name,
        epci_short_name=(epci.short_name if epci else None) or epci_name,
        code_changes=changes,
        infra_communal_levels=frozenset(zones.infra_communal_levels),
        epci_names=epci_names,
        rpe_epci=rpe_epci,
    )


def _epcis(paths: Paths, communes: pd.DataFrame, zones: model.ZonesFile) -> tuple[dict[str, str], dict[str, str]]:
    """({EPCI code: name}, {RPE code: EPCI code}) of a several-EPCI referential; ({}, {}) for one EPCI."""
    listed = zones.epcis or {}
    if "code_epci" not in communes.columns:
        if listed:
            raise TerritoryError(f"{paths.zones} lists `epcis`: {paths.territory.name} needs a column code_epci")
        return {}, {}
    if not listed:
        raise TerritoryError(f"{paths.territory.name} has a column code_epci: {paths.zones.name} must list `epcis`")
    epci_names = {code: entry if isinstance(entry, str) else entry.name for code, entry in listed.items()}
    communes["code_epci"] = communes["code_epci"].str.strip()
    unknown = sorted(set(communes["code_epci"]) - set(epci_names))
    if unknown:
        raise TerritoryError(f"{paths.territory}: EPCI codes not listed in {paths.zones.name}: {unknown[:10]}")
    pairs = communes[["code_rpe", "code_epci"]].drop_duplicates()
    split = sorted(pairs.loc[pairs["code_rpe"].duplicated(), "code_rpe"])
    if split:
        raise TerritoryError(f"{paths.territory}: RPE spanning several EPCIs: {split[:10]}")
    return epci_names, dict(zip(pairs["code_rpe"], pairs["code_epci"]))
