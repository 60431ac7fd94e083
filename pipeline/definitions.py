"""The Dagster code location: assembles each stage's definitions and the resources, nothing else."""

import dagster as dg

from pipeline.defs import automation, disclosure, ingest, lifecycle, reports, warehouse
from pipeline.resources import WarehouseResource


def _module_defs(module) -> dg.Definitions:
    return dg.Definitions(
        assets=dg.load_assets_from_modules([module]),
        asset_checks=dg.load_asset_checks_from_modules([module]),
    )


defs = dg.Definitions.merge(
    _module_defs(ingest),
    _module_defs(warehouse),
    _module_defs(disclosure),
    _module_defs(lifecycle),
    _module_defs(reports),
    automation.defs,
    dg.Definitions(resources={"warehouse": WarehouseResource()}),
)
