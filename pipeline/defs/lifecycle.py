"""The destruction of the study's data (convention art. 2), once the study is published (art. 7).

One op job, `destruction`, that nothing starts on its own: not an asset, so that "Materialize
all" in the UI never selects it (it did, when the destruction was an asset: the run failed on
its missing config); no schedule, sensor or automation, and a required run config that repeats
the study id and names the operator. It runs with `make destroy STUDY_ID=<id> OPERATOR=...`
(`python -m pipeline destroy`) or from the UI's launchpad with the same config. The logic
lives in the package `pipeline.lifecycle`; the asset graph it purges comes as the resource
`asset_graph`.
"""

import dagster as dg
from pydantic import Field

from pipeline.lifecycle.gate import DestructionError, decode_sentinels, destruction_problems
from pipeline.resources import GovernedGraph, ProjectResource, WarehouseResource
from pipeline.study import StudyError

# the op's name: the launchpad's config reads `ops: {study_data_destruction: {config: ...}}`
OP_NAME = "study_data_destruction"
# `make destroy STUDY_ID=...` and the UI's launchpad run this job, never a sensor or schedule
DESTRUCTION_JOB = "destruction"


class DestructionConfig(dg.Config):
    study_id: str = Field(description="The study id of config/study.yaml, repeated to confirm the destruction.")
    operator: str = Field(
        default="", description="Who asks for the destruction (name, role): required, the certificate names them."
    )
    sentinels: list[str] = Field(
        default=[],
        description="Known values to search for after destruction, as b64:<base64 of UTF-8> "
        "(never in clear: Dagster keeps the run config).",
    )


@dg.op(
    name=OP_NAME,
    # no pool: a destruction killed half-way would keep the pool's slot and block its own
    # re-run; the warehouse file lock serialises its DuckDB work with the other writers
    tags={"lifecycle": "destruction"},
    description="Destroys every CAF data of the closed study (raw files, raw/staging/confidential tables, "
    "Dagster history), searches what is left (residue scan) and issues the procès-verbal de destruction in "
    "reports/. Command: make destroy STUDY_ID=<study_id> OPERATOR='Name, role'.",
)
def study_data_destruction(
    context: dg.OpExecutionContext,
    config: DestructionConfig,
    project: ProjectResource,
    warehouse: WarehouseResource,
    asset_graph: dg.ResourceParam[GovernedGraph],
):
    from pipeline.lifecycle.destruction import Destruction  # loaded by the destruction only

    try:
        study = project.study()
        problems = destruction_problems(study, config.study_id, dict(context.run.tags), operator=config.operator)
        sentinels = decode_sentinels(config.sentinels)
    except (StudyError, DestructionError) as exc:
        raise dg.Failure(description=f"destruction refused: {exc}", allow_retries=False) from None
    if problems:
        raise dg.Failure(
            description="destruction refused:\n" + "\n".join(f"- {p}" for p in problems), allow_retries=False
        )
    db = warehouse.database
    try:
        destruction = Destruction(
            study=study,
            instance=context.instance,
            graph=asset_graph.graph,
            warehouse_db=db,
            lock=warehouse.lock,
            log=context.log,
            run_id=context.run_id,
            operator=config.operator,
            sentinels=sentinels,
        )
        outcome = destruction.run()
    except DestructionError as exc:
        raise dg.Failure(description=f"destruction stopped: {exc} (re-run to resume)", allow_retries=False) from None

    scan = outcome.scan
    show = destruction.show
    metadata = {
        "study_id": study.study_id,
        "certificate_html": dg.MetadataValue.path(show(outcome.certificate_html)),
        "certificate_json": dg.MetadataValue.path(show(outcome.certificate_json)),
        "residue_scan_clean": scan.clean,
        "residue_scan_conclusive": scan.conclusive,
        "residue_scan_verdict": scan.verdict,
        "residue_scan_not_checked": dg.MetadataValue.json(scan.not_checked),
        "residue_scan_copies_searched": scan.copies_searched,
        "residue_scan_files": scan.files_scanned,
        "residue_scan_bytes": scan.bytes_scanned,
        "residue_scan_tables": scan.tables_scanned,
        "residue_scan_sentinels_given": scan.sentinels_given,
        "residue_scan_sentinels_derived": scan.sentinels_derived,
        "residue_hits": dg.MetadataValue.json(scan.hits),
    }
    if outcome.already_done:
        metadata["already_destroyed_on"] = str(outcome.journal.data.get("completed_at", ""))
        late = outcome.journal.data["verifications"][-1]["raw_files_destroyed"]
        metadata["late_raw_files_destroyed"] = len(late)
        metadata["late_raw_files"] = dg.MetadataValue.json([{k: f[k] for k in ("path", "sha256")} for f in late])
    cert = outcome.certificate
    if cert:
        destroyed = cert["detruit"]
        metadata.update({
            "status": cert["status"],
            "executed_by": cert["operation"]["executee_par"],
            "operator": cert["operation"]["operateur_declare"],
            "raw_files_destroyed": dg.MetadataValue.json(
                [{k: f[k] for k in ("path", "size_bytes", "sha256")} for f in destroyed["fichiers_bruts"]]
            ),
            "tables_destroyed": dg.MetadataValue.json(
                [{k: t[k] for k in ("table", "rows", "columns", "sha256")} for t in destroyed["tables"]]
            ),
            "warehouse_file": dg.MetadataValue.json(destroyed["fichier_duckdb"]),
            "dagster_assets_purged": dg.MetadataValue.json([a["asset_key"] for a in destroyed["dagster"]["actifs_purges"]]),
            "dagster_runs_deleted": len(destroyed["dagster"]["runs_supprimes"]),
            "dagster_files_destroyed": sum(len(r.get("files", [])) for r in destroyed["dagster"]["runs_supprimes"]),
            "kept": dg.MetadataValue.json(
                [{"table": t["table"], "sha256": t["sha256"], "reason": t["reason"]} for t in cert["conserve"]["tables"]]
                + [{"table": t["table"], "columns": t["columns_kept"], "reason": t["reason"]}
                   for t in cert["conserve"]["tables_reduites"]]
                + [{"path": r["path"], "sha256": r["sha256"], "reason": r["reason"]} for r in cert["conserve"]["rapports"]]
            ),
        })
    if scan.hits:
        where = "\n".join(f"- {h['path']} ({h['form']}, {h['origin']}): {h['count']}" for h in scan.hits[:50])
        raise dg.Failure(
            description=(
                f"RESIDUE FOUND after destruction: {sum(h['count'] for h in scan.hits)} occurrence(s) of "
                f"sentinel values in:\n{where}\nThe certificate {show(outcome.certificate_html)} says ÉCHEC; "
                "remove these traces (or find what wrote them) and re-run `make destroy`."
            ),
            metadata=metadata,
            allow_retries=False,
        )
    if not scan.conclusive:
        context.log.warning(f"destruction done, NOT VERIFIED: {scan.no_value_reason}; certificate: "
                            f"{show(outcome.certificate_html)}")
    else:
        context.log.info(f"destruction complete; certificate: {show(outcome.certificate_html)}")
    # the run's output (the CLI prints from it); its metadata shows in the UI's run page
    return dg.Output({k: getattr(v, "value", v) for k, v in metadata.items()}, metadata=metadata)


@dg.job(
    name=DESTRUCTION_JOB,
    description="End of the study (convention art. 2): destroys the CAF data and issues the certificate. "
    "Run config: the study id of config/study.yaml, repeated, and the operator.",
    tags={"lifecycle": "destruction"},
)
def destruction_job():
    study_data_destruction()


defs = dg.Definitions(jobs=[destruction_job])
