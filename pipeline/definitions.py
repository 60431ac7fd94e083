"""The Dagster code location: assembles assets, checks and resources, nothing else."""

import dagster as dg

from pipeline.defs import ingest
from pipeline.resources import WarehouseResource

defs = dg.Definitions(
    assets=ingest.ingest_assets,
    resources={"warehouse": WarehouseResource()},
)
