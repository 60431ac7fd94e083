"""The compliance manifest: one document tying each published output to its sources.

What belongs here: gathering, for each published table and report, its chain of assets
down to the raw files of the ingest ledger (name, sha256, date received), the code
(git commit, code version of each stage), the disclosure policy (version, hash) and the
audit's result, the runs that produced each step, the classification of every table
still on disk, the study's status and its publication history (the releases of
`pipeline.releases`, and whether the current published table is one of them or a draft);
and writing it as JSON and as a page a compliance reviewer reads (Markdown, in French).

What does not: the lineage tags themselves (`pipeline.lineage`), running anything.
The manifest holds names, hashes, counts, dates and run ids only: never a figure.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb

from pipeline.classification import classify, load_catalog_or_none
from pipeline.coverage import ledger
from pipeline.fingerprint import PUBLISHED_TABLE, table_digest
from pipeline.lifecycle.rules import classify_table
from pipeline.lineage import CLASSIFICATION_TAG, repository_commit
from pipeline.releases import publication_state

AUDIT = ("core_masking", "audit_secret_statistique")
JSON_NAME, PAGE_NAME = "manifeste_conformite.json", "manifeste_conformite.md"


@dataclass(frozen=True)
class Output:
    asset: str
    location: str  # a table or a file under reports/


def _iso(timestamp: float | None) -> str | None:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc).isoformat(timespec="seconds") if timestamp else None


def _metadata_text(metadata: dict, key: str) -> str | None:
    value = metadata.get(key)
    return None if value is None else str(getattr(value, "value", value))


def _has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, table]
    ).fetchone()[0])


def tables_on_disk(con: duckdb.DuckDBPyConnection) -> list[dict]:
    rows = con.execute(
        "SELECT table_schema, table_name, table_type FROM information_schema.tables "
        "WHERE table_catalog = current_database() ORDER BY 1, 2"
    ).fetchall()
    catalog = load_catalog_or_none()  # unreadable: every source table confidential
    out = []
    for schema, name, kind in rows:
        # the same classification as the lineage tags and the destruction (pipeline.classification)
        table = classify(schema, name, catalog)
        out.append({"table": f"{schema}.{name}", "type": kind.lower(), "classification": table.classification,
                    "source": table.source, "at_study_end": classify_table(schema, name, catalog)[0]})
    return out


def _published_fingerprint(con: duckdb.DuckDBPyConnection) -> dict:
    """The published table's fingerprint, as out_indicators, the reports and the certificate give
    it, and its masked cells as the table counts them (the audit's own count is another thing:
    every protected value it judged, see `render_page`)."""
    if not _has_table(con, *PUBLISHED_TABLE.split(".")):
        return {"table": PUBLISHED_TABLE, "exists": False}
    rows, digest = table_digest(con, PUBLISHED_TABLE)
    masked = con.execute(f"SELECT count(*) FROM {PUBLISHED_TABLE} WHERE status = 'masked'").fetchone()[0]
    return {"table": PUBLISHED_TABLE, "exists": True, "rows": rows, "fingerprint": digest, "masked_cells": masked}


def column_lineage(graph) -> list[dict]:
    """Which upstream columns each column of each table is computed from, as declared on the
    assets (`dagster/column_lineage`, `pipeline.lineage`): the open-source UI does not show it,
    so the manifest does."""
    out = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        lineage = (node.metadata or {}).get("dagster/column_lineage")
        lineage = getattr(lineage, "value", lineage)
        if lineage is None:
            continue
        table = (node.metadata or {}).get("dagster/table_name")
        out.append({
            "asset": key.to_user_string(),
            "table": str(getattr(table, "value", table) or ""),
            "columns": {column: sorted(f"{d.asset_key.to_user_string()}.{d.column_name}" for d in deps)
                        for column, deps in lineage.deps_by_column.items()},
        })
    return out


def build_manifest(
    graph, instance: dg.DagsterInstance, con: duckdb.DuckDBPyConnection, outputs: list[Output], study, policy
) -> dict:
    """The manifest as a dictionary (see the module docstring)."""
    files = ledger(con)
    # one query for every asset's latest materialization (one per asset took most of the manifest's time)
    latest = instance.get_latest_materialization_events(graph.get_all_asset_keys())

    def last(key: dg.AssetKey) -> dict:
        event = latest.get(key)
        if event is None:
            return {"materialized": False}
        metadata = event.asset_materialization.metadata if event.asset_materialization else {}
        return {
            "materialized": True,
            "run_id": event.run_id,
            "at": _iso(event.timestamp),
            "code_version": _metadata_text(metadata, "dagster/code_version") or graph.get(key).code_version,
        }

    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        tags = node.tags or {}
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "classification": tags.get(CLASSIFICATION_TAG),
            "convention_articles": tags.get("convention_articles"),
            "sources": tags.get("source"),
            "owners": list(node.owners),
            "code_version": node.code_version,
            "last_materialization": last(key),
        }

    record = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(dg.AssetKey(AUDIT[0]), AUDIT[1]))
    audit = {"check": f"{AUDIT[0]}:{AUDIT[1]}", "passed": None, "run_id": None}
    if record is not None and record.evaluation is not None:
        audit.update({
            "passed": bool(record.evaluation.passed),
            "run_id": record.run_id,
            "at": _iso(record.create_timestamp),
            **{k: _metadata_text(record.evaluation.metadata, k)
               for k in ("masked_cells_checked", "sums_checked", "findings", "releases_known")},
        })

    published = _published_fingerprint(con)
    publications = publication_state(con)

    chains = []
    for output in outputs:
        key = dg.AssetKey(output.asset)
        upstream = _ancestors(graph, key)
        raw_sources = sorted(a.removeprefix("raw_") for a in upstream if a.startswith("raw_"))
        chains.append({
            "output": output.asset,
            "location": output.location,
            "classification": assets[output.asset]["classification"],
            "last_materialization": assets[output.asset]["last_materialization"],
            "upstream_assets": upstream,
            "runs": sorted({assets[a]["last_materialization"].get("run_id")
                            for a in upstream + [output.asset]} - {None}),
            "raw_files": [f for f in files if f["source"] in raw_sources],
        })

    return {
        "document": "Manifeste de conformité — convention CAF du Pas-de-Calais / CABBALR",
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "study": {
            "study_id": study.study_id,
            "title": study.title,
            "status": study.status,
            "published_on": study.published_on.isoformat() if study.published_on else None,
            "responsible": study.responsible,
        },
        "code": {"git_commit": repository_commit(),
                 "code_versions": {a: v["code_version"] for a, v in assets.items()}},
        "disclosure_policy": {"version": policy.version, "sha256": policy.sha256},
        "audit": audit,
        "ingest_ledger": files,
        "outputs": chains,
        "tables_on_disk": tables_on_disk(con),
        "published_table": {**published, "release": publications["current_release"]},
        "publications": publications,
        "assets": assets,
        "column_lineage": column_lineage(graph),
    }


def _publication_text(m: dict) -> str:
    """Whether the current published table is a release (which one) or a draft."""
    table = m["published_table"]
    if not table.get("exists"):
        return "aucune table publiée"
    release = table.get("release")
    if release:
        return f"la table publiée actuelle est la publication **{release}**"
    count = len(m.get("publications", {}).get("releases", []))
    return ("**brouillon non publié** : la table publiée actuelle ne correspond à aucune publication"
            + (f" ({count} publication(s) enregistrée(s))" if count else "") + " ; `make release` la publie")


def _ancestors(graph, key: dg.AssetKey) -> list[str]:
    out, todo = set(), [key]
    while todo:
        for parent in graph.get(todo.pop()).parent_keys:
            if parent not in out:
                out.add(parent)
                todo.append(parent)
    return sorted(k.to_user_string() for k in out)


def write_manifest(manifest: dict, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path, page_path = folder / JSON_NAME, folder / PAGE_NAME
    json_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    page_path.write_text(render_page(manifest), encoding="utf-8")
    return json_path, page_path


def render_page(m: dict) -> str:
    """The manifest as a page for the reviewer, in French."""
    s, audit = m["study"], m["audit"]
    audit_text = {True: "réussi", False: "ÉCHEC", None: "non exécuté"}[audit["passed"]]
    lines = [
        f"# {m['document']}",
        "",
        f"Produit le {m['generated_at']} (UTC). Étude `{s['study_id']}` — {s['title']} ; statut : **{s['status']}**"
        + (f", publiée le {s['published_on']}" if s["published_on"] else "") + f" ; responsable : {s['responsible']}.",
        "",
        f"- Code : commit `{m['code']['git_commit']}`",
        f"- Politique de secret statistique (`config/disclosure.yaml`) : version {m['disclosure_policy']['version']}, "
        f"sha256 `{m['disclosure_policy']['sha256']}`",
        f"- Audit indépendant ({audit['check']}) : **{audit_text}**"
        + (f", exécution `{audit['run_id']}` le {audit.get('at')} : {audit.get('masked_cells_checked')} valeurs "
           "protégées vérifiées (chaque cellule masquée, et les termes cachés — numérateur, dénominateur, "
           "complément — des taux qu'elle touche"
           + (", y compris ceux des publications antérieures" if audit.get("releases_known") not in (None, "0")
              else "") + f") et {audit.get('sums_checked')} sommes" if audit["run_id"] else ""),
        (f"- Version des données (empreinte de `{m['published_table']['table']}`) : "
         + (f"`{m['published_table']['fingerprint']}`, {m['published_table']['rows']} lignes dont "
            f"{m['published_table'].get('masked_cells')} cellules masquées"
            if m["published_table"].get("exists") else "table absente")),
        "- Publication : " + _publication_text(m),
        "",
        "## Sorties publiées et leur chaîne",
        "",
    ]
    for chain in m["outputs"]:
        last = chain["last_materialization"]
        lines += [
            f"### {chain['output']} — `{chain['location']}`",
            "",
            f"Classification : {chain['classification']}. "
            + (f"Dernière production : exécution `{last['run_id']}` le {last['at']}." if last.get("materialized")
               else "Jamais produite sur cette instance."),
            "",
            "Étapes en amont : " + ", ".join(f"`{a}`" for a in chain["upstream_assets"]),
            "",
            "| fichier reçu | source | année | sha256 | reçu le |",
            "|---|---|---|---|---|",
            *[f"| {f['file_name']} | {f['source']} | {f['year']} | `{f['sha256'][:16]}…` | {f['received_at'] or '—'} |"
              for f in chain["raw_files"]],
            "",
        ]
    releases = m.get("publications", {}).get("releases", [])
    lines += ["## Publications (releases)", ""]
    if releases:
        lines += ["| publication | date (UTC) | version de la politique | empreinte de la table "
                  "| empreinte du référentiel | lignes |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['release_id']} | {r['released_at']} | {r['policy_version']} | `{r['table_fingerprint']}` "
                  f"| `{r['referential_sha256']}` | {r['rows']} |" for r in releases]
    else:
        lines.append("Aucune publication enregistrée (`make release`).")
    lines.append("")
    at_end = {"destroy": "détruite", "keep": "conservée", "reduce": "réduite"}
    lines += ["## Tables présentes dans l'entrepôt", "", "| table | type | classification | à la clôture de l'étude |",
              "|---|---|---|---|"]
    lines += [f"| `{t['table']}` | {t['type']} | {t['classification']} | {at_end.get(t.get('at_study_end'), '')} |"
              for t in m["tables_on_disk"]]
    lines += ["", "## Étapes (assets Dagster)", "",
              "| étape | groupe | classification | articles | sources | responsable | version du code "
              "| dernière exécution |",
              "|---|---|---|---|---|---|---|---|"]
    for name, a in m["assets"].items():
        last = a["last_materialization"]
        lines.append(
            f"| `{name}` | {a['group']} | {a['classification']} | {a['convention_articles']} | {a['sources'] or ''} | "
            f"{', '.join(a['owners'])} | `{a['code_version']}` | {last.get('run_id', '—') or '—'} |"
        )
    lines += ["", "## Lignage des colonnes", "",
              "De quelles colonnes en amont chaque colonne de chaque table est calculée (déclaré sur chaque étape, "
              "`pipeline/lineage.py` ; l'interface Dagster open source ne l'affiche pas).", ""]
    for item in m.get("column_lineage", []):
        lines += [f"### `{item['asset']}`" + (f" — `{item['table']}`" if item["table"] else ""), "",
                  "| colonne | calculée à partir de |", "|---|---|"]
        lines += [f"| `{column}` | {', '.join(f'`{d}`' for d in deps) or '—'} |"
                  for column, deps in item["columns"].items()]
        lines.append("")
    lines += ["", "Source des données : CAF du Pas-de-Calais (convention du 4 août 2022), Cnaf, Insee.", ""]
    return "\n".join(lines)
