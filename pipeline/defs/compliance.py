"""The compliance manifest asset: reports/manifeste_conformite.json and .md.

Rebuilt whenever a published output changes (automation), from the asset graph (the
resource `asset_graph`), the instance's records, the ingest ledger, the warehouse's list of
tables and the release history; the logic is in `pipeline.compliance`. The release job
(`pipeline.defs.releases`) writes it again after a release (`write_compliance_manifest`).
"""

import hashlib

import dagster as dg

from pipeline.compliance import JSON_NAME, PAGE_NAME, Output, build_manifest, write_manifest
from pipeline.resources import GovernedGraph, ProjectResource, WarehouseResource
from pipeline.tables import PUBLISHED_TABLE

OUTPUTS = [
    Output("out_indicators", PUBLISHED_TABLE),
    Output("out_rapport_excel", "reports/indicateurs_petite_enfance.xlsx"),
    Output("out_rapport_html", "reports/rapport_petite_enfance.html"),
]


@dg.asset(
    group_name="reports",
    deps=[o.asset for o in OUTPUTS],
    kinds={"json", "markdown"},
    automation_condition=dg.AutomationCondition.eager(),
    metadata={"files": [f"reports/{JSON_NAME}", f"reports/{PAGE_NAME}"]},
)
def out_manifeste_conformite(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    warehouse: WarehouseResource,
    asset_graph: dg.ResourceParam[GovernedGraph],
) -> dg.MaterializeResult:
    """Compliance manifest (reports/manifeste_conformite.*): each published table and report with its chain
    down to the raw files of the ingest ledger, the code, policy and audit behind it, built from Dagster's records."""
    manifest, metadata = write_compliance_manifest(context.instance, asset_graph.graph, project, warehouse)
    untraced = [c["output"] for c in manifest["outputs"] if not c["raw_files"]]
    if untraced:
        context.log.warning(f"outputs with no ingested file behind them: {', '.join(untraced)}")
    return dg.MaterializeResult(metadata=metadata)


def write_compliance_manifest(
    instance: dg.DagsterInstance, graph, project: ProjectResource, warehouse: WarehouseResource
) -> tuple[dict, dict]:
    """Build and write the manifest; (manifest, the metadata of its materialization). The
    release job calls it too, so that the manifest says which release the published table is."""
    with warehouse.connect(read_only=True) as con:
        manifest = build_manifest(graph, instance, con, OUTPUTS, project.study(), project.policy())
    json_path, _ = write_manifest(manifest, project.paths.reports)
    return manifest, {
        "json_sha256": hashlib.sha256(json_path.read_bytes()).hexdigest(),
        "outputs": len(manifest["outputs"]),
        "raw_files": len(manifest["ingest_ledger"]),
        "audit_passed": str(manifest["audit"]["passed"]),
        "git_commit": manifest["code"]["git_commit"],
        "releases": len(manifest["publications"]["releases"]),
        "current_release": manifest["publications"]["current_release"] or "draft",
    }

defs = dg.Definitions(assets=[out_manifeste_conformite])
