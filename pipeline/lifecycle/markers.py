"""What the Dagster UI shows after the destruction: a *détruit* observation on each purged
asset, and the latest materialization of each kept asset whose run was deleted, recorded
again outside any run with fresh fingerprints, so the published lineage stays visible."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg

from pipeline.lifecycle.dagster_storage import DagsterStorage, deserialize_metadata, serialize_metadata
from pipeline.lifecycle.dates import fr_datetime
from pipeline.lifecycle.rules import LIFECYCLE_GROUP
from pipeline.lifecycle.shredder import sha256_file


def restatements(graph, storage: DagsterStorage, deleted_runs: set[str], purged: set[dg.AssetKey]) -> list[dict]:
    """The latest materialization (per partition) of each kept asset that lives in a run
    about to be deleted: re-recorded afterwards so the published lineage stays visible."""
    out = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        if key in purged or graph.get(key).group_name == LIFECYCLE_GROUP:
            continue
        latest = storage.latest_materializations(key)
        for partition, record in sorted(latest.items(), key=lambda kv: str(kv[0])):
            if record.run_id not in deleted_runs:
                continue
            out.append({
                "asset_key": key.to_user_string(),
                "partition": partition,
                "original_run_id": record.run_id,
                "originally_materialized_at": record.timestamp,
                "metadata": serialize_metadata(record.asset_materialization.metadata),
                "description": record.asset_materialization.description or "",
                "restated_at": "",
            })
    return out


def destroyed_observation(item: dict, study_id: str, certificate: str, moment: dt.datetime,
                          runs_deleted: int) -> dg.AssetObservation:
    """The *détruit* observation of one purged asset (an item of the inventory's assets_purged)."""
    metadata: dict[str, Any] = {
        "status": "détruit (destroyed)",
        "destroyed_at": dg.MetadataValue.timestamp(moment),
        "destruction_certificate": dg.MetadataValue.path(certificate),
        "study_id": study_id,
        "reason": item["reason"],
        "partitions_destroyed": dg.MetadataValue.json(item.get("partitions", [])),
        "tables_destroyed": dg.MetadataValue.json(item.get("tables", [])),
        "materializations_purged": item.get("materializations", 0),
        "runs_deleted": runs_deleted,
    }
    for key in ("first_materialized_at", "last_materialized_at"):
        if item.get(key):
            metadata[key] = dg.MetadataValue.timestamp(dt.datetime.fromisoformat(item[key]))
    return dg.AssetObservation(
        asset_key=dg.AssetKey.from_user_string(item["asset_key"]),
        description=f"Données détruites le {fr_datetime(moment)} (convention art. 2) : voir {certificate}",
        metadata=metadata,
    )


def restated_materialization(item: dict, study_id: str, certificate: str,
                             tables_after: dict[str, tuple[int, str]]) -> dg.AssetMaterialization:
    """A kept asset's materialization recorded again (an item of the inventory's restate), with
    its table's fresh row count and content SHA-256, and the SHA-256 of the files it names."""
    metadata = deserialize_metadata(item["metadata"])
    metadata.update({
        "restated_after_destruction": True,
        "original_run_id": f"{item['original_run_id']} (supprimé)",
        "originally_materialized_at": dg.MetadataValue.timestamp(item["originally_materialized_at"]),
        "destruction_certificate": dg.MetadataValue.path(certificate),
        "study_id": study_id,
    })
    table = metadata.get("dagster/table_name")
    table = str(getattr(table, "value", table) or "")
    if table in tables_after:
        metadata["dagster/row_count"], metadata["content_sha256"] = tables_after[table]
    for name, value in list(metadata.items()):
        path = getattr(value, "path", None) if isinstance(value, dg.PathMetadataValue) else None
        if path and Path(path).is_file():
            metadata[f"{name}_sha256"] = sha256_file(Path(path))
    return dg.AssetMaterialization(
        asset_key=dg.AssetKey.from_user_string(item["asset_key"]),
        partition=item["partition"],
        description=(item["description"] + " " if item["description"] else "")
        + "(réenregistré après la destruction des données de l'étude : le run d'origine touchait "
        "des données confidentielles et a été supprimé)",
        metadata=metadata,
    )
