"""Every file of config/ at once: each read by its own loader (which checks it with its
model), then the checks between files as the validator of one model, `ConfigSet`; and the
JSON Schemas of the YAML files, written from the models for editors (`config/schemas/`).

`python -m pipeline validate` and `make run` start here: a misspelt key anywhere stops them
with the file, the key and what was expected, before any run is launched.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from pipeline.config_models.base import Model
from pipeline.config_models.catalog import CatalogFile
from pipeline.config_models.disclosure import DisclosureFile
from pipeline.config_models.governance import GovernanceFile, TablesFile
from pipeline.config_models.indicators import COMMUNAL_LEVELS, IndicatorsFile
from pipeline.config_models.report import ReportFile, report_file
from pipeline.config_models.study import OperationsFile, StudyFile, load_operations
from pipeline.config_models.territory import ZonesFile
from pipeline.errors import PipelineError
from pipeline.settings import PACKAGE_ROOT, Paths

# The model of each YAML file of config/ (the CSV files' rows: `config_models.territory`).
FILES: dict[str, type[Model]] = {
    "catalog.yaml": CatalogFile, "disclosure.yaml": DisclosureFile, "governance.yaml": GovernanceFile,
    "indicators.yaml": IndicatorsFile, "operations.yaml": OperationsFile, "report.yaml": ReportFile,
    "study.yaml": StudyFile, "tables.yaml": TablesFile, "zones.yaml": ZonesFile,
}
SCHEMAS = PACKAGE_ROOT / "config" / "schemas"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


class ConfigSet(BaseModel):
    """The configuration as the loaders read it; its validator holds the checks between files."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    catalog: Any
    territory: Any
    indicators: Any
    policy: Any
    governance: Any
    report: ReportFile
    tables: Any = None  # config/tables.yaml's entries (pipeline.tables.load_tables)

    @model_validator(mode="after")
    def _coherent(self) -> ConfigSet:
        problems = [f"config/indicators.yaml and config/catalog.yaml: {p}" for p in self._indicators_and_catalog()]
        problems += [f"config/disclosure.yaml and config/indicators.yaml: {p}" for p in self._policy_and_indicators()]
        problems += self._levels() + self._report_keys() + self._classifications() + self._coded_levels()
        if problems:
            raise PydanticCustomError("incoherent", "the config files disagree", {"problems": problems})
        return self

    def _indicators_and_catalog(self) -> list[str]:
        from pipeline.indicators import check_against_catalog

        return check_against_catalog(self.indicators, self.catalog)

    def _policy_and_indicators(self) -> list[str]:
        from pipeline.disclosure.policy import check_against_indicators

        return check_against_indicators(self.policy, self.indicators)

    def _levels(self) -> list[str]:
        """The levels the policy prices and the territory lists below the commune are the catalog's."""
        below = set(self.catalog.zone_levels) - {"commune"}
        problems = [f"config/zones.yaml: infra_communal_levels names {level}, which is no zone level of "
                    f"config/catalog.yaml (zone_levels: {', '.join(sorted(below)) or 'none below the commune'})"
                    for level in sorted(self.territory.infra_communal_levels - below)]
        known = [*COMMUNAL_LEVELS, *sorted(below)]
        problems += [f"config/disclosure.yaml: protection.cost_by_level names {level}, which is none of the levels "
                     f"{', '.join(known)}" for level in self.policy.cost_by_level if level not in known]
        return problems

    def _coded_levels(self) -> list[str]:
        """Every zone level of the catalog is a value the tables' `level` columns allow (else the
        first write of an IRIS-like level would be refused, in a run instead of here)."""
        from pipeline.tables import PUBLISHED_TABLE, STAGING_PATTERN

        problems = []
        for table in (PUBLISHED_TABLE, STAGING_PATTERN):
            entry = (self.tables or {}).get(table)
            column = entry.columns.get("level") if entry else None
            allowed = set(column.allowed or ()) if column else set()
            problems += [f"config/tables.yaml: {table}.level does not allow the zone level {level} of "
                         "config/catalog.yaml (add it to `allowed`)"
                         for level in sorted(set(self.catalog.zone_levels) - allowed) if allowed]
        return problems

    def _report_keys(self) -> list[str]:
        """report.yaml names indicators, measures and producers that exist (a misspelt one is ignored silently)."""
        from pipeline.indicators import PRODUCERS

        ids = [*self.indicators.ids, "allocataires"]
        measures = sorted({m for s in self.catalog.sources.values() for m in s.measures})
        problems = []
        for key, known, what in (("sheet_names", ids, "an indicator of config/indicators.yaml"),
                                 ("notes", ids, "an indicator of config/indicators.yaml"),
                                 ("measure_labels", measures, "a measure of config/catalog.yaml"),
                                 ("producers", PRODUCERS, f"a producer ({', '.join(PRODUCERS)})")):
            for name in getattr(self.report, key):
                if name not in known:
                    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                    problems.append(f"config/report.yaml: {key}.{name} is not {what}"
                                    + (f" (did you mean {close[0]}?)" if close else ""))
        return problems

    def _classifications(self) -> list[str]:
        declared = self.governance.classifications
        return [f"config/catalog.yaml: sources.{s.id}.classification {s.classification} is not declared in "
                "config/governance.yaml (classifications)" for s in self.catalog.sources.values()
                if s.classification not in declared]


def _loaders() -> dict[str, Callable[[Paths], Any]]:
    from pipeline.catalog import load_catalog
    from pipeline.disclosure.policy import load_policy
    from pipeline.indicators import load_indicators
    from pipeline.lineage import load_governance
    from pipeline.study import load_study
    from pipeline.tables import load_tables
    from pipeline.territory import load_territory

    return {
        "catalog": load_catalog, "territory": load_territory, "indicators": load_indicators, "policy": load_policy,
        "governance": load_governance, "report": report_file, "study": load_study,
        "operations": lambda paths: load_operations(paths.config / "operations.yaml"),
        "tables": lambda paths: load_tables(paths.config),
    }


def check_config(paths: Paths) -> list[str]:
    """Every problem of config/, one message each (empty: the configuration is sound).
    Each file first, by its loader; the checks between files once each file reads."""
    loaded, problems = {}, []
    for name, load in _loaders().items():
        try:
            loaded[name] = load(paths)
        except PipelineError as exc:
            problems.append(str(exc))
    if problems:
        return problems
    try:
        ConfigSet(**{k: v for k, v in loaded.items() if k in ConfigSet.model_fields})
    except ValidationError as exc:
        return [p for e in exc.errors() for p in (e.get("ctx") or {}).get("problems", [e["msg"]])]
    return []


# ---- JSON Schemas for editors ------------------------------------------------------------


def schema_text(name: str) -> str:
    """The JSON Schema of config/<name>, as written in config/schemas/ (stable: a test compares them)."""
    schema = {"$schema": DRAFT, **FILES[name].model_json_schema(), "title": f"config/{name}"}
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def schema_path(name: str, folder: Path = SCHEMAS) -> Path:
    return folder / name.replace(".yaml", ".json")


def write_schemas(folder: Path = SCHEMAS) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FILES:
        path = schema_path(name, folder)
        path.write_text(schema_text(name), encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(folder: Path = SCHEMAS) -> list[str]:
    """The schemas of config/schemas/ that differ from the models (empty: up to date)."""
    return [name for name in FILES
            if not schema_path(name, folder).exists()
            or schema_path(name, folder).read_text(encoding="utf-8") != schema_text(name)]
