"""Lineage and governance attached to every asset when the code location loads.

What belongs here: applying `config/governance.yaml` (owner, classification, convention
articles) to every asset, tagging each asset with the producers of its data (CAF, Cnaf,
INSEE: read from the catalog for ingest, carried down the asset graph for the rest),
giving each stage a code version (a hash of the code and configuration it runs), and
declaring which columns each table is computed from (`dagster/column_lineage`).

What does not: the compliance manifest built from all this after a run
(`pipeline.compliance`), and deciding what to destroy (`pipeline.lifecycle`, which reads
the classification tags set here).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import dagster as dg

from pipeline.catalog import Catalog, load_catalog
from pipeline.classification import CONFIDENTIAL, PUBLIABLE  # noqa: F401 (re-exported)
from pipeline.config_models.base import read_yaml, validated
from pipeline.config_models.governance import GovernanceFile
from pipeline.errors import PipelineError
from pipeline.settings import PACKAGE_ROOT, Paths, project_paths
from pipeline.tables import INDICATORS_TABLE, PUBLISHED_TABLE, column_names

INGEST_GROUPS = ("raw", "staging")  # one source's own tables: classified by its catalog entry
CLASSIFICATION_TAG, ARTICLES_TAG, SOURCE_TAG = "classification", "convention_articles", "source"


class GovernanceError(PipelineError, ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    classification: str
    articles: tuple[str, ...]


@dataclass(frozen=True)
class Governance:
    owner: str
    classifications: dict[str, str]
    groups: dict[str, Rule]
    assets: dict[str, Rule]

    def rule_for(self, key: dg.AssetKey, group: str | None, catalog: Catalog | None = None) -> Rule:
        """An exception of governance.yaml; else, for a source's raw_ and stg_ assets, the
        source's declaration in the catalog; else the stage's rule."""
        name = key.to_user_string()
        if name in self.assets:
            return self.assets[name]
        if group in INGEST_GROUPS:
            source_id = name.removeprefix("raw_" if group == "raw" else "stg_")
            source = (catalog or load_catalog()).sources.get(source_id)
            if source is None:
                raise GovernanceError(f"asset {name}: no source {source_id!r} in config/catalog.yaml to classify it")
            return Rule(source.classification, source.articles)
        if group in self.groups:
            return self.groups[group]
        raise GovernanceError(f"config/governance.yaml classifies neither asset {name} nor its group {group}")


def load_governance(paths: Paths | None = None) -> Governance:
    path = (paths or project_paths()).config / "governance.yaml"
    doc = validated(GovernanceFile, read_yaml(path, GovernanceError, "the governance file is missing"),
                    path, GovernanceError)
    return Governance(
        owner=doc.owner,
        classifications=dict(doc.classifications),
        groups={g: Rule(r.classification, r.articles) for g, r in doc.groups.items()},
        assets={a: Rule(r.classification, r.articles) for a, r in doc.assets.items()},
    )


# -- code versions ------------------------------------------------------------------------

# What each stage runs: a change in any of these files gives its assets a new code version.
STAGE_FILES: dict[str, tuple[str, ...]] = {
    "raw": ("pipeline/extract.py", "pipeline/catalog.py", "pipeline/defs/ingest.py", "config/catalog.yaml"),
    "staging": ("pipeline/staging.py", "pipeline/validation.py", "schemas", "pipeline/defs/ingest.py",
                "config/catalog.yaml", "config/commune_changes.csv", "config/territory.csv"),
    "warehouse": ("pipeline/defs/warehouse.py", "pipeline/indicators.py", "pipeline/sql", "config/indicators.yaml"),
    "disclosure": ("pipeline/disclosure", "pipeline/defs/disclosure.py", "config/disclosure.yaml"),
    "reports": ("pipeline/reports", "pipeline/defs/reports.py", "pipeline/coverage.py", "pipeline/compliance.py",
                "pipeline/defs/compliance.py",
                "pipeline/classification.py", "config/report.yaml", "config/governance.yaml"),
    # what is destroyed follows each source's classification in the catalog
    "lifecycle": ("pipeline/lifecycle", "pipeline/defs/lifecycle.py", "pipeline/classification.py",
                  "config/catalog.yaml"),
}


@cache
def code_version(group: str) -> str | None:
    """A short hash of the files the stage runs (None for an unknown stage)."""
    if group not in STAGE_FILES:
        return None
    digest = hashlib.sha256()
    for name in STAGE_FILES[group]:
        path = PACKAGE_ROOT / name
        files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts) \
            if path.is_dir() else [path]
        for file in files:
            if file.exists():
                digest.update(str(file.relative_to(PACKAGE_ROOT)).encode())
                digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


# -- column lineage -----------------------------------------------------------------------

def _deps(asset: str, *columns: str) -> list[dg.TableColumnDep]:
    return [dg.TableColumnDep(asset_key=dg.AssetKey(asset), column_name=c) for c in columns]


def staging_lineage(source_id: str) -> dg.TableColumnLineage:
    """staging.<source> columns from the raw copy's columns (labels of every vintage)."""
    source = load_catalog().source(source_id)
    raw = f"raw_{source_id}"
    code_labels = sorted({v.label_of["code_zone"] for v in source.all_vintages})
    measure_labels = sorted(
        {label for v in source.all_vintages for label, canonical in v.columns.items()
         if canonical not in ("code_zone", "nom_zone") and canonical != v.year_column}
        | {label for v in source.all_vintages if v.long for label in (v.long.measure, v.long.value)}
    )
    return dg.TableColumnLineage(
        deps_by_column={
            "level": _deps(raw, *code_labels),
            "zone_code": _deps(raw, *code_labels),
            "measure": _deps(raw, *measure_labels),
            "value": _deps(raw, *measure_labels),
            "flag": _deps(raw, *measure_labels),
            "file_name": _deps(raw, "_file"),
            "sheet": _deps(raw, "_sheet"),
            "source_row": _deps(raw, "_row"),
        }
    )


def _same_columns(upstream: str, columns: list[str]) -> dict[str, list[dg.TableColumnDep]]:
    return {c: _deps(upstream, c) for c in columns}



def table_lineage(asset: str, staging_sources: list[str]) -> dg.TableColumnLineage | None:
    """Which upstream columns each column of the asset's table is computed from."""
    if asset.startswith("stg_"):
        return staging_lineage(asset.removeprefix("stg_"))
    stg = [f"stg_{s}" for s in staging_sources]
    if asset == "core_indicator_inputs":
        by_column: dict[str, list[dg.TableColumnDep]] = {}
        for column, upstream in (("zone_code", "zone_code"), ("level", "level"), ("measure", "measure"),
                                 ("year", "year"), ("value", "value"), ("bottom_up_value", "value"),
                                 ("caf_value", "value"), ("status", "flag"), ("source_flag", "flag")):
            by_column[column] = [d for s in stg for d in _deps(s, upstream)]
        return dg.TableColumnLineage(deps_by_column=by_column)
    if asset == "core_indicators":
        return dg.TableColumnLineage(
            deps_by_column={
                **_same_columns("core_indicator_inputs", ["level", "zone_code", "zone_name", "parent_code", "year"]),
                "indicator": _deps("core_indicator_inputs", "measure"),
                "value": _deps("core_indicator_inputs", "value", "measure"),
                "numerator": _deps("core_indicator_inputs", "value", "measure"),
                "denominator": _deps("core_indicator_inputs", "value", "measure"),
                "allocataires": _deps("core_indicator_inputs", "value", "measure"),
                "value_origin": _deps("core_indicator_inputs", "value_origin"),
                "status": _deps("core_indicator_inputs", "status"),
            }
        )
    if asset == "core_indicators_evolution":
        return dg.TableColumnLineage(
            deps_by_column={
                **_same_columns("core_indicators", ["level", "zone_code", "zone_name", "parent_code", "indicator"]),
                "change_abs": _deps("core_indicators", "value", "year"),
                "change_pct": _deps("core_indicators", "value", "year"),
                "status": _deps("core_indicators", "status"),
            }
        )
    published = column_names(PUBLISHED_TABLE)  # config/tables.yaml
    if asset == "core_masking":
        kept = [c for c in published if c in column_names(INDICATORS_TABLE) and c not in ("value", "status")]
        return dg.TableColumnLineage(
            deps_by_column={
                **_same_columns("core_indicators", kept),
                "value": _deps("core_indicators", "value", "status", "numerator", "denominator", "allocataires"),
                "status": _deps("core_indicators", "value", "status", "numerator", "denominator", "allocataires"),
            }
        )
    if asset == "out_indicators":
        return dg.TableColumnLineage(deps_by_column=_same_columns("core_masking", published))
    return None


# -- applying it --------------------------------------------------------------------------

def producers_by_asset(graph) -> dict[dg.AssetKey, set[str]]:
    """The producers (CAF, Cnaf, INSEE) whose data each asset holds or is computed from."""
    out: dict[dg.AssetKey, set[str]] = {}
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        own = (node.tags or {}).get(SOURCE_TAG)
        inherited = set().union(*(out.get(parent, set()) for parent in node.parent_keys)) if node.parent_keys else set()
        out[key] = ({own} if own else set()) | inherited
    return out


def apply_governance(defs: dg.Definitions) -> dg.Definitions:
    """The definitions with owners, tags, code versions and column lineage on every asset."""
    governance = load_governance()
    catalog = load_catalog()
    graph = defs.resolve_asset_graph()
    producers = producers_by_asset(graph)
    # the staging tables the indicators read (a declared source no indicator uses is not one)
    inputs = dg.AssetKey("core_indicator_inputs")
    readers = graph.get(inputs).parent_keys if graph.has(inputs) else set(graph.get_all_asset_keys())
    staging_sources = sorted(k.to_user_string().removeprefix("stg_") for k in readers
                             if k.to_user_string().startswith("stg_"))

    def govern(spec: dg.AssetSpec) -> dg.AssetSpec:
        rule = governance.rule_for(spec.key, spec.group_name, catalog)
        tags = {
            **spec.tags,
            CLASSIFICATION_TAG: rule.classification,
            ARTICLES_TAG: ".".join(rule.articles),
        }
        sources = producers.get(spec.key)
        if sources:
            tags[SOURCE_TAG] = ".".join(sorted(sources))
        metadata = dict(spec.metadata)
        lineage = table_lineage(spec.key.to_user_string(), staging_sources)
        if lineage is not None:
            metadata["dagster/column_lineage"] = lineage
        metadata["classification_meaning"] = governance.classifications[rule.classification]
        return spec.replace_attributes(
            owners=[governance.owner],
            tags=tags,
            metadata=metadata,
            code_version=code_version(spec.group_name or ""),
        )

    with warnings.catch_warnings():  # map_asset_specs is marked preview in dagster 1.13
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return defs.map_asset_specs(func=govern)


def repository_commit(root: Path = PACKAGE_ROOT) -> str:
    """The git commit of the code (with '+changes' when the work tree differs), if known."""
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + ("+changes" if dirty else "")
