"""The check after the destruction: where it searches, for what, how, and what it could not
check, each written from what the run really did (the certificate's section 6 is this).

A scan with no value of the data to search for only looks for identical copies of the files
received: it is not conclusive, and the certificate says so and why (`no_value_reason`),
from what the derivation of values met (`pipeline.lifecycle.warehouse.derive_sentinels`).
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from pipeline.lifecycle.scanner import ScanReport, Sentinel, residue_scan
from pipeline.lifecycle.warehouse import scan_duckdb_tables

# a copy of an empty or tiny file carries no data, and every empty file would be one
MIN_COPY_BYTES = 16


def scan_roots(d) -> list[Path]:
    """The folders searched: the project, raw/, the warehouse's folder, reports/, DAGSTER_HOME
    (the outermost of each nest only)."""
    roots = [d.paths.root, d.paths.raw, d.db.parent, d.paths.reports, d.home]
    env_home = os.environ.get("DAGSTER_HOME")
    if env_home:
        roots.append(Path(env_home))
    out: list[Path] = []
    for root in roots:
        root = root.resolve()
        if root.exists() and not any(root.is_relative_to(r) for r in out):
            out = [r for r in out if not r.is_relative_to(root)] + [root]
    return out


def received_copies(d) -> dict[str, str]:
    """SHA-256 of every file received (those destroyed, those that came after) -> what it is."""
    items = list(d.journal.inventory.get("raw_files", []))
    for check in d.journal.data.get("verifications", []):
        items += check.get("raw_files_destroyed", [])
    return {i["sha256"]: "fichier reçu" for i in items if i.get("size_bytes", 0) >= MIN_COPY_BYTES}


def postgres_done(pg: dict | None) -> str:
    """What the compaction of the instance's PostgreSQL database did, in French, from its record."""
    if not pg:
        return "aucune opération sur la base PostgreSQL n'a été enregistrée"
    done = [f"VACUUM FULL de {len(pg.get('vacuum_full', []))} table(s)"]
    if pg.get("checkpoints"):
        done.append(f"{pg['checkpoints']} point(s) de contrôle (CHECKPOINT)")
    if pg.get("wal_switches"):
        done.append(f"{pg['wal_switches']} changement(s) de segment du journal WAL")
    text = ", ".join(done)
    if pg.get("refused"):
        text += " ; refusé par le serveur : " + " ; ".join(pg["refused"])
    return text


def scan(d, sentinels: list[Sentinel]) -> ScanReport:
    """Every file under the project and DAGSTER_HOME (values and identical copies of the files
    received); the tables of the DuckDB file; with a PostgreSQL instance, its database's tables
    and the cluster's files where readable. Each place is named with how it was searched."""
    roots = scan_roots(d)
    report = residue_scan(roots, sentinels, display=d.show, copies=received_copies(d))
    names = {".": "dossier du projet", "DAGSTER_HOME/.": "DAGSTER_HOME"}
    report.scopes.append({
        "what": "fichiers : " + ", ".join(names.get(d.show(r), d.show(r)) for r in roots),
        "how": (f"lecture de chaque octet de {report.files_scanned} fichiers (y compris le contenu décompressé "
                "des archives zip/xlsx et gzip)"
                + (f" à la recherche de {len(sentinels)} valeur(s)" if sentinels else "")
                + (f" et de copies à l'identique des {report.copies_searched} fichiers reçus (empreinte SHA-256)"
                   if report.copies_searched else "")),
    })
    if d.db.exists():
        with d.lock():
            try:
                n, hits = scan_duckdb_tables(d.db, sentinels, d.show(d.db))
            except duckdb.Error as exc:
                n, hits = 0, []
                report.unreadable.append(f"{d.show(d.db)} ({exc.__class__.__name__})")
        report.tables_scanned = n
        report.hits.extend(hits)
        report.scopes.append({
            "what": f"base DuckDB {d.show(d.db)}" + (f" ({n} tables)" if sentinels else ""),
            "how": "requête SQL de chaque colonne texte de chaque table" if sentinels else
                   "non interrogée : aucune valeur à y rechercher (son fichier a été lu octet par octet ci-dessus)",
        })
    if d.storage.kind == "postgres":
        _scan_postgres(d, sentinels, report)
    if not report.conclusive:
        report.no_value_reason = no_value_reason(d)
        report.not_checked.insert(0, "le contenu des données : aucune valeur des données n'a été recherchée ("
                                  + report.no_value_reason + ")")
    report.not_checked += [f"{u} : illisible" for u in report.unreadable]
    return report


def _scan_postgres(d, sentinels: list[Sentinel], report: ScanReport) -> None:
    scope, hits = d.storage.scan_database(sentinels)
    if not sentinels:
        scope = dict(scope, how="non interrogée : aucune valeur à y rechercher")
    report.scopes.append(scope)
    report.hits.extend(hits)
    pg = d.journal.results.get("dagster", {}).get("postgres") or {}
    if pg.get("refused"):
        report.not_checked.append(
            "ce que la base PostgreSQL garde des lignes supprimées dans les segments du journal WAL non réécrits : "
            "le serveur a refusé " + " ; ".join(pg["refused"]))
    cluster = d.storage.data_directory()
    if cluster is None:
        report.scopes.append({
            "what": "fichiers du cluster PostgreSQL",
            "how": "non parcourus : le serveur ne donne pas son dossier à ce compte ou ce compte ne peut "
                   "pas le lire (serveur distant, droits) ; à vérifier par l'administrateur de la base",
        })
        report.not_checked.append("les fichiers du cluster PostgreSQL (tables, index, journal WAL) : non lisibles "
                                  "par ce compte")
        return
    files = residue_scan([cluster], sentinels, display=lambda p: "PGDATA/" + str(p.relative_to(cluster)))
    report.files_scanned += files.files_scanned
    report.bytes_scanned += files.bytes_scanned
    report.hits.extend(files.hits)
    report.unreadable.extend(files.unreadable)
    report.scopes.append({
        "what": f"fichiers du cluster PostgreSQL ({cluster}) : tables, index, journal WAL",
        "how": f"lecture de chaque octet de {files.files_scanned} fichiers, après : {postgres_done(pg)}",
    })


def no_value_reason(d) -> str:
    """Why no value of the data was searched, from what the derivation met (journal) and what
    the operator gave: never a fixed sentence."""
    res = d.journal.results
    info = res.get("derivation") or {}
    first = res.get("derived_sentinels_first_attempt", 0)
    if info.get("state") == "no_warehouse":
        why = "il n'y avait pas de base de données dont les tirer"
    elif info.get("state") == "unreadable":
        why = "la base de données était en cours de réécriture par une exécution précédente interrompue"
    elif info.get("raw_tables", 0) == 0 and first:
        why = (f"les tables brutes avaient déjà été détruites par une exécution précédente interrompue, qui en avait "
               f"tiré {first} valeur(s), gardées en mémoire seulement et perdues avec elle")
    elif info.get("raw_tables", 0) == 0:
        why = "la base ne contenait aucune table brute (schéma raw) dont tirer des valeurs"
    elif info.get("candidates", 0) == 0:
        why = (f"les {info['raw_tables']} tables brutes ne contiennent aucun texte distinctif (au moins 6 caractères, "
               "hors nombres, codes et identifiants)")
    else:
        why = (f"les {info['candidates']} textes distinctifs des {info['raw_tables']} tables brutes figurent tous dans "
               "ce qui est public ou conservé (référentiel du territoire, tables publiées, rapports, code, "
               "documentation) : ils ne distinguent pas les données de la CAF")
    return (f"aucune valeur n'a été tirée des données, car {why} ; et l'opérateur n'a fourni aucune valeur connue des "
            "fichiers (make destroy ... SENTINEL='…', ou --sentinel)")
