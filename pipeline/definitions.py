"""The Dagster code location: assembles each stage's definitions and the resources, nothing else."""

import dagster as dg

from pipeline.defs import ingest
from pipeline.resources import WarehouseResource

defs = dg.Definitions.merge(
    ingest.defs,
    dg.Definitions(resources={"warehouse": WarehouseResource()}),
)
