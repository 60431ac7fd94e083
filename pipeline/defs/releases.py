"""The release: publishing published.indicators is an explicit, immutable act.

One op job, `release`, that nothing starts on its own: not an asset (so "Materialize all"
in the UI never selects it), no schedule, sensor or automation. It runs with
`make release [OPERATOR=...] [NOTE=...]` (`python -m pipeline release`) or from the UI's
launchpad. Its op appends the current published table, its zone tree and the confidential
truth behind it to the history (`pipeline.releases`), then writes the compliance manifest
again, so that it names the release.

Metadata and logs: the release id, counts and fingerprints only, never a value.
"""

import os

import dagster as dg
from pydantic import Field

from pipeline.defs.compliance import write_compliance_manifest
from pipeline.disclosure.policy import PolicyError
from pipeline.releases import ReleaseError, record_release
from pipeline.resources import WAREHOUSE_POOL, GovernedGraph, ProjectResource, WarehouseResource
from pipeline.study import StudyError
from pipeline.territory import TerritoryError

RELEASE_JOB = "release"
RELEASE_OP = "record_release"
MANIFEST_ASSET = "out_manifeste_conformite"


class ReleaseConfig(dg.Config):
    operator: str = Field(default="", description="Who releases (name, role); empty: the OPERATOR environment variable.")
    note: str = Field(default="", description="A note kept with the release (recipients, committee); never a figure.")


@dg.op(
    name=RELEASE_OP,
    pool=WAREHOUSE_POOL,
    tags={"lifecycle": "release"},
    description="Appends published.indicators, its zone tree and the confidential truth behind it to the "
    "release history (published.releases, published.release_indicators, published.release_zones, "
    "confidential.release_values), in one transaction; refuses a closed study, a table already released "
    "or one the last audit did not clear.",
)
def record_release_op(
    context: dg.OpExecutionContext,
    config: ReleaseConfig,
    project: ProjectResource,
    warehouse: WarehouseResource,
    asset_graph: dg.ResourceParam[GovernedGraph],
):
    operator = config.operator or os.environ.get("OPERATOR", "")
    try:
        study, policy, territory = project.study(), project.policy(), project.territory()
        with warehouse.connect() as con:
            release = record_release(con, study=study, policy=policy, territory=territory, operator=operator,
                                     note=config.note, reports_dir=project.paths.reports)
    except (ReleaseError, StudyError, PolicyError, TerritoryError, FileNotFoundError) as exc:
        raise dg.Failure(description=f"release refused: {exc}", allow_retries=False) from None
    context.log.info(f"released {release.release_id}: {release.rows} rows, fingerprint {release.table_fingerprint}")
    # the manifest says which release the published table now is
    _, manifest_metadata = write_compliance_manifest(context.instance, asset_graph.graph, project, warehouse)
    yield dg.AssetMaterialization(
        asset_key=MANIFEST_ASSET, description=f"written again by release {release.release_id}",
        metadata=manifest_metadata,
    )
    summary = {"release_id": release.release_id, "rows": release.rows, "masked": release.masked,
               "table_fingerprint": release.table_fingerprint, "referential_sha256": release.referential_sha256}
    yield dg.Output(
        summary,
        metadata={
            **summary,
            "study_id": release.study_id,
            "zones": len(release.zones),
            "truth_rows": len(release.truth),
            "reports": len(release.reports),
            "policy_version": release.policy_version,
            "policy_sha256": release.policy_sha256,
        },
    )


@dg.job(
    name=RELEASE_JOB,
    description="Publication (release): records the current published.indicators in the immutable history. "
    "Run config: operator and note (optional).",
    tags={"lifecycle": "release"},
)
def release_job():
    record_release_op()


defs = dg.Definitions(jobs=[release_job])
