"""What is destroyed, kept or reduced at the end of the study: rules, not lists of tables.

A source's own tables (`raw.<source>_<year>`, `staging.<source>`) follow the classification
its entry of `config/catalog.yaml` declares (`pipeline.classification`): destroyed if
confidential, kept if it is public open data. The `confidential` schema is destroyed,
`published` kept, the ingest ledger reduced to the proof of what was received; any other
table is destroyed (a table is kept only for a stated reason). In Dagster, the assets tagged
`classification: confidentiel-convention-caf` or writing a table that is destroyed are
purged.
"""

from __future__ import annotations

import dagster as dg

from pipeline.catalog import Catalog
from pipeline.classification import CONFIDENTIAL, PUBLIABLE, SOURCE_SCHEMAS, classify

LIFECYCLE_GROUP = "lifecycle"
CLASSIFICATION_TAG = "classification"

DESTROYED_SCHEMAS = ("raw", "staging", "confidential")
KEPT_SCHEMAS = {
    "published": "résultats publiés de l'étude, après application du secret statistique (art. 3 et 4) : "
    "ils sont la finalité de l'étude et ne permettent pas d'identifier un allocataire",
}
REDUCED_TABLES = {
    "lineage.ingest_ledger": (
        ("source", "year", "file_name", "size_bytes", "sha256"),
        "traçabilité de ce qui a été reçu de la CAF (nom, taille et empreinte des fichiers), sans aucun contenu",
    ),
}
OTHER_TABLE_REASON = "table hors de la liste des éléments conservés : détruite par défaut"
REPORT_REASON = (
    "documents de l'étude destinés aux comités et à la CAF (art. 3), "
    "produits à partir des seuls résultats publiés"
)
CERTIFICATE_REASON = "le présent procès-verbal et son double JSON"


def classify_table(schema: str, table: str, catalog: Catalog | None = None) -> tuple[str, str]:
    """('destroy' | 'keep' | 'reduce', reason) for one table of the warehouse."""
    name = f"{schema}.{table}"
    if schema in SOURCE_SCHEMAS:
        declared = classify(schema, table, catalog)
        if declared.classification == PUBLIABLE:
            return "keep", (f"source {declared.source} déclarée publiable dans config/catalog.yaml : données publiques "
                            f"de {declared.producer} ({declared.licence}), hors du champ de la convention")
        if declared.source:
            return "destroy", (f"source {declared.source} ({declared.producer}) déclarée {CONFIDENTIAL} dans "
                               f"config/catalog.yaml : données reçues au titre de la convention (art. 2)")
        return "destroy", f"schéma {schema} : table d'aucune source du catalogue, détruite par défaut (art. 2)"
    if schema in DESTROYED_SCHEMAS:
        return "destroy", f"schéma {schema} : données reçues de la CAF ou calculées à partir d'elles (art. 2)"
    if name in REDUCED_TABLES:
        return "reduce", REDUCED_TABLES[name][1]
    if schema in KEPT_SCHEMAS:
        return "keep", KEPT_SCHEMAS[schema]
    return "destroy", OTHER_TABLE_REASON


def purged_asset_keys(graph) -> dict[dg.AssetKey, str]:
    """The assets whose data are destroyed, with the reason: tagged confidential, or
    writing a table of a destroyed schema."""
    out = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.group_name == LIFECYCLE_GROUP:
            continue
        table = str((node.metadata or {}).get("dagster/table_name", "") or "")
        if (node.tags or {}).get(CLASSIFICATION_TAG) == CONFIDENTIAL:
            out[key] = f"étiqueté classification={CONFIDENTIAL}"
        elif "." in table and classify_table(*table.split(".", 1))[0] == "destroy":
            out[key] = f"écrit {table}, table détruite"
    return out


def touched_asset_keys(graph) -> set[dg.AssetKey]:
    """The purged assets and their direct children (a child reads them): the runs that
    touched any of these are deleted."""
    purged = set(purged_asset_keys(graph))
    children = {c for k in purged if graph.has(k) for c in graph.get(k).child_keys}
    return purged | {c for c in children if graph.get(c).group_name != LIFECYCLE_GROUP}
