"""The Dagster code location: each stage's `defs`, merged, governed, and the resources; nothing else."""

import dagster as dg

from pipeline.defs import (
    automation,
    compliance,
    disclosure,
    ingest,
    lifecycle,
    releases,
    reports,
    shapes,
    slots,
    warehouse,
)
from pipeline.lineage import apply_governance
from pipeline.resources import ASSET_GRAPH_RESOURCE, ProjectResource, WarehouseResource, asset_graph_resource

# Every stage module (pipeline/defs/*.py) declares its assets, checks, jobs, sensors and
# schedules in one `defs` object.
STAGES = (ingest, warehouse, disclosure, shapes, reports, compliance, releases, lifecycle, automation, slots)

RESOURCES = {
    # the folders and config/ (empty fields: the environment's, read when a run starts)
    "project": ProjectResource(),
    "warehouse": WarehouseResource(),
    # the governed graph, for the assets that read it whole (manifest, destruction)
    ASSET_GRAPH_RESOURCE: asset_graph_resource(lambda: defs),
}

# Owners, classification, convention articles, sources, code versions and column lineage
# (config/governance.yaml, pipeline/lineage.py) on every asset.
defs = apply_governance(
    dg.Definitions.merge(*(stage.defs for stage in STAGES), dg.Definitions(resources=RESOURCES))
)
