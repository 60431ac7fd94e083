"""The Dagster code location: assembles each stage's definitions and the resources, nothing else."""

import dagster as dg

from pipeline.defs import automation, compliance, disclosure, ingest, lifecycle, reports, warehouse
from pipeline.lineage import apply_governance
from pipeline.resources import WarehouseResource


def _module_defs(module) -> dg.Definitions:
    return dg.Definitions(
        assets=dg.load_assets_from_modules([module]),
        asset_checks=dg.load_asset_checks_from_modules([module]),
    )


# Owners, classification, convention articles, sources, code versions and column lineage
# (config/governance.yaml, pipeline/lineage.py) on every asset.
defs = apply_governance(
    dg.Definitions.merge(
        _module_defs(ingest),
        _module_defs(warehouse),
        _module_defs(disclosure),
        _module_defs(lifecycle),
        _module_defs(reports),
        _module_defs(compliance),
        automation.defs,
        dg.Definitions(resources={"warehouse": WarehouseResource()}),
    )
)
