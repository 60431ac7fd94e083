"""The procès-verbal de destruction: its data (the JSON twin) and its printable HTML page,
rendered by Jinja2 from `templates/certificate.html.j2` (autoescaped)."""

from __future__ import annotations

import datetime as dt
import os
import socket
from functools import lru_cache

import jinja2

from pipeline.lifecycle.dates import fr_bytes, fr_date, fr_datetime, fr_int, fr_short, iso
from pipeline.lifecycle.gate import lifecycle_dir
from pipeline.lifecycle.journal import os_user
from pipeline.lifecycle.rules import CERTIFICATE_REASON
from pipeline.lifecycle.scanner import ScanReport
from pipeline.lifecycle.shredder import sha256_file, write_json_atomic
from pipeline.lifecycle.verification import postgres_done
from pipeline.lifecycle.warehouse import warehouse_inventory_empty

DAGSTER_PURGE = ("suppression des runs ayant lu ou produit les données (événements, journaux, sorties "
                 "capturées), effacement de l'historique des actifs")
DONE, UNVERIFIED, FAILED = "TERMINÉE", "NON VÉRIFIÉE", "ÉCHEC"
NOT_GIVEN = "non renseigné"


def dagster_method(res: dict) -> str:
    """How Dagster's storage was purged, from what the compaction did (a step the server refused
    is named as refused, never claimed)."""
    if res.get("storage") == "postgres":
        return DAGSTER_PURGE + " ; dans la base PostgreSQL : " + postgres_done(res.get("postgres"))
    return DAGSTER_PURGE + ", reconstruction (VACUUM) des bases SQLite"


def status_of(scan: ScanReport) -> str:
    """ÉCHEC when something was found; NON VÉRIFIÉE when no value of the data could be searched
    for (finding nothing then proves nothing); TERMINÉE otherwise."""
    return FAILED if scan.hits else (DONE if scan.conclusive else UNVERIFIED)


def _explanation(status: str, scan: ScanReport) -> str:
    if status == FAILED:
        return ("ÉCHEC : des traces des données ont été trouvées après la destruction. Ce document NE DOIT PAS "
                "être transmis à la CAF tant que la destruction n'a pas été reprise avec succès.")
    copies = (f" et des copies à l'identique des {scan.copies_searched} fichiers reçus" if scan.copies_searched
              else "")
    if status == DONE:
        return (f"Destruction terminée ; le contrôle de non-persistance a recherché "
                f"{scan.sentinels_given + scan.sentinels_derived} valeur(s) des données{copies} : aucune trouvée.")
    return (f"Destruction effectuée, NON VÉRIFIÉE : {scan.no_value_reason}. "
            + (f"Seules des copies à l'identique des {scan.copies_searched} fichiers reçus ont été recherchées "
               "(aucune trouvée) : " if scan.copies_searched else "Rien n'a donc été recherché : ")
            + "ce contrôle ne prouve pas l'absence d'autres traces (extraits, exports, copies modifiées). Pour le "
            "compléter, reprendre la commande en donnant un texte connu des fichiers reçus : "
            "make destroy STUDY_ID=… OPERATOR=… SENTINEL='…'.")


def _scan_explanation(scan: ScanReport, postgres: bool) -> str:
    places = ("chaque octet de chaque fichier des dossiers ci-dessous (y compris le contenu décompressé des archives "
              "zip/xlsx et gzip)")
    if not scan.conclusive:
        return (f"Après la destruction, {places} a été lu à la recherche de copies à l'identique des fichiers reçus "
                f"(empreinte SHA-256). Aucune valeur des données n'a été recherchée : {scan.no_value_reason}. "
                "Le détail de ce qui a été parcouru, comment, et de ce qui n'a pas pu être vérifié figure ci-dessous.")
    return (f"Après la destruction, {places} a été recherché pour les valeurs sentinelles, sous les encodages listés, "
            "et pour les copies à l'identique des fichiers reçus ; les tables restantes de la base DuckDB ont en outre "
            "été interrogées"
            + (", ainsi que chaque table de la base PostgreSQL de l'orchestrateur et, quand ce compte peut les "
               "lire, les fichiers du cluster PostgreSQL" if postgres else "")
            + ". Le détail de ce qui a été parcouru, comment, et de ce qui n'a pas pu être vérifié figure ci-dessous. "
            "Les valeurs « dérivées » sont des textes distinctifs tirés des données avant leur destruction, "
            "gardés en mémoire seulement et jamais écrits ; ce document n'en donne que le nombre.")
POSTGRES_LIMITS = [
    "Base PostgreSQL de l'orchestrateur : ses sauvegardes, ses archives du journal WAL (archive_mode), ses "
    "réplicas et le journal du serveur hors de son dossier de données ne sont pas atteints par ce traitement ; "
    "leur purge relève de l'administrateur de la base.",
]


def build_certificate(d, scan: ScanReport, finished: dt.datetime) -> dict:
    """The procès-verbal as data (its JSON twin); the HTML is rendered from it."""
    journal = d.journal.data
    inv = journal["inventory"]
    res = journal["results"]
    study = d.study
    first = journal["attempts"][0] if journal["attempts"] else {}
    dagster_res = res.get("dagster", {})
    wh = inv.get("warehouse") or warehouse_inventory_empty()
    reports_after = {}
    for item in inv.get("reports_kept", []):
        path = d.resolve(item["path"])
        reports_after[item["path"]] = sha256_file(path) if path.exists() else ""
    status = status_of(scan)
    return {
        "document": "Procès-verbal de destruction des données",
        "fichiers": {"html": d.show(d.html_path), "json": d.show(d.json_path)},
        "status": status,
        "statut_explication": _explanation(status, scan),
        "etude": {
            "identifiant": study.study_id,
            "titre": study.title,
            "responsable": study.responsible,
            "statut": study.status,
            "date_de_publication": study.published_on.isoformat() if study.published_on else None,
        },
        "convention": {
            "parties": study.parties,
            "signee_le": str(study.convention.get("signed_on") or ""),
            "decision_du": str(study.convention.get("decision_on") or ""),
            "signataires": list(study.convention.get("signatories") or []),
            "articles": {
                "2": "Le partenaire s'engage à détruire les données à l'issue de l'étude menée.",
                "7": "La présente convention prendra fin à la publication de l'étude.",
            },
        },
        "operation": {
            "debut": first.get("started_at", ""),
            "fin": journal.get("completed_at") or iso(finished),  # a later check does not move it
            "executee_par": first.get("executed_by", os_user()),
            # who asked for the destruction (the first attempt's); later checks are listed apart
            "operateur_declare": first.get("operator") or d.operator or NOT_GIVEN,
            "machine": first.get("host", socket.gethostname()),
            "run_dagster": d.run_id,
            "tentatives": journal["attempts"],
            "methode": {
                "fichiers": "écrasement du contenu par une passe d'octets aléatoires, écriture forcée sur le "
                            "disque (fsync), puis suppression",
                "base_duckdb": "copie des seules tables conservées dans un fichier neuf ; l'ancien fichier est "
                               "écrasé puis remplacé par la copie, de sorte que les pages libérées ne gardent rien",
                "dagster": dagster_method(dagster_res),
            },
        },
        "detruit": {
            "fichiers_bruts": inv.get("raw_files", []),
            "dossiers_supprimes": res.get("raw_folders_removed", []),
            "tables": wh["tables_destroyed"],
            "vues": wh["views_destroyed"],
            "colonnes_retirees": [
                {"table": t["table"], "colonnes": t["columns_removed"]} for t in wh["tables_reduced"]
            ],
            "fichier_duckdb": {
                "avant": inv.get("warehouse_file"),
                "apres": res.get("warehouse", {}).get("after"),
            },
            "dagster": {
                "actifs_purges": inv.get("assets_purged", []),
                "runs_supprimes": dagster_res.get("runs_deleted", []),
                "evenements_hors_run_supprimes": dagster_res.get("runless_events_deleted", 0),
                "fichiers_io_manager": dagster_res.get("io_storage", []),
                "bases_sqlite_reconstruites": dagster_res.get("sqlite_vacuumed", []),
                "stockage": dagster_res.get("storage", "sqlite"),
                "postgresql": dagster_res.get("postgres"),
            },
        },
        "conserve": {
            "tables": wh["tables_kept"],
            "vues": wh["views_kept"],
            "tables_reduites": wh["tables_reduced"],
            "rapports": [dict(item, sha256_apres=reports_after.get(item["path"], ""))
                         for item in inv.get("reports_kept", [])],
            "autres": [
                {"element": "config/study.yaml et la configuration du projet",
                 "motif": "références de l'étude et de la convention ; aucune donnée de la CAF"},
                {"element": "historique Dagster des actifs publiés",
                 "motif": "réenregistré (empreintes, nombres de lignes) "
                          "pour garder la traçabilité des résultats publiés"},
                {"element": d.show(d.html_path) + ", " + d.show(d.json_path), "motif": CERTIFICATE_REASON},
                {"element": d.show(lifecycle_dir(d.paths)),
                 "motif": "journal de la destruction (chemins, tailles, empreintes, sans contenu)"},
            ],
        },
        "controle_de_non_persistance": dict(
            scan.to_dict(),
            explication=_scan_explanation(scan, dagster_res.get("storage") == "postgres"),
            derived_in_earlier_attempts=journal.get("scan", {}).get("derived_in_earlier_attempts", 0),
            # the checks run again after the destruction (make destroy once more), each as it went
            verifications=[{k: v.get(k) for k in ("at", "operator", "verdict", "sentinels_given", "files_scanned")}
                           | {"raw_files_destroyed": v.get("raw_files_destroyed", [])}
                           for v in journal.get("verifications", [])],
        ),
        "limites": [
            "Les copies des fichiers hors de ce projet (messagerie, dossier Téléchargements, sauvegardes, "
            "supports amovibles) ne sont pas couvertes par ce traitement : elles doivent être détruites "
            "séparément et leur destruction attestée ci-dessous.",
            "Sur un disque SSD ou un système de fichiers à copie sur écriture, l'écrasement ne garantit pas "
            "l'effacement physique des anciens blocs ; le chiffrement du disque reste la protection de référence.",
        ] + (POSTGRES_LIMITS if dagster_res.get("storage") == "postgres" else []),
    }


def _day(value) -> dt.date | None:
    """A date of the certificate's data (ISO text in the JSON twin; a date from config/study.yaml)."""
    if not value:
        return None
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def _table(headers, rows, empty="Aucun.", mono=()):
    """Rows for the template's table macro."""
    return {"headers": headers, "rows": [["" if c is None else str(c) for c in row] for row in rows],
            "empty": empty, "mono": list(mono)}


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.lifecycle", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(fr_int=fr_int, fr_bytes=fr_bytes)
    return env


def render_certificate_html(cert: dict) -> str:
    """The procès-verbal as a self-contained, printable HTML page (French)."""
    etude, conv, op = cert["etude"], cert["convention"], cert["operation"]
    det, kept, scan = cert["detruit"], cert["conserve"], cert["controle_de_non_persistance"]
    dag = det["dagster"]
    parties = conv["parties"]
    run_files = [f for r in dag["runs_supprimes"] for f in r.get("files", [])] + list(dag["fichiers_io_manager"])
    start = dt.datetime.fromisoformat(op["debut"]) if op["debut"] else None
    reasons = sorted({t["reason"] for t in det["tables"]})
    wh_before, wh_after = det["fichier_duckdb"]["avant"], det["fichier_duckdb"]["apres"]
    kept_rows = [[t["table"], fr_int(t["rows"]), t["sha256"],
                  "identique" if t.get("sha256_after") == t["sha256"] else "—", t["reason"]] for t in kept["tables"]]
    kept_rows += [[f"{t['table']} (réduite aux colonnes {', '.join(t['columns_kept'])})", fr_int(t["rows"]),
                   t.get("sha256_after", ""), "réduite", t["reason"]] for t in kept["tables_reduites"]]
    context = {
        "cert": cert, "etude": etude, "conv": conv, "op": op, "det": det, "kept": kept, "scan": scan, "dag": dag,
        "provider": str(parties.get("data_provider", "la CAF")),
        "partner": str(parties.get("partner", "le partenaire")),
        "ok": cert["status"] == DONE, "unverified": cert["status"] == UNVERIFIED,
        "signed": fr_date(_day(conv["signee_le"])),
        "decision": fr_date(_day(conv["decision_du"])) if conv["decision_du"] else "",
        "published": fr_date(_day(etude["date_de_publication"])),
        "start": fr_datetime(start) if start else "", "end": fr_datetime(dt.datetime.fromisoformat(op["fin"])),
        "run_files": run_files, "n_hits": sum(h["count"] for h in scan["hits"]),
        "reasons": [(chr(ord("a") + i), r) for i, r in enumerate(reasons)],
        "pg": dag.get("postgresql"), "pg_done": postgres_done(dag.get("postgresql")),
        "summary": _table(["Nature", "Nombre", "Volume"], [
            ["Fichiers reçus (dossier raw/)", len(det["fichiers_bruts"]),
             fr_bytes(sum(f["size_bytes"] for f in det["fichiers_bruts"]))],
            ["Tables de la base de données", len(det["tables"]),
             f"{fr_int(sum(t['rows'] for t in det['tables']))} lignes"],
            ["Vues de la base de données", len(det["vues"]), ""],
            ["Actifs de l'orchestrateur dont l'historique est effacé", len(dag["actifs_purges"]),
             f"{fr_int(sum(a.get('materializations', 0) for a in dag['actifs_purges']))} matérialisations"],
            ["Exécutions (runs) de l'orchestrateur supprimées", len(dag["runs_supprimes"]),
             "événements, journaux et sorties capturées"],
            ["Fichiers de l'orchestrateur écrasés puis supprimés", len(run_files),
             fr_bytes(sum(f["size_bytes"] for f in run_files))],
        ]),
        "raw": _table(["Fichier", "Taille (octets)", "Empreinte SHA-256 avant destruction", "Détruit le"],
                      [[f["path"], fr_int(f["size_bytes"]), f["sha256"], fr_short(f.get("destroyed_at", ""))]
                       for f in det["fichiers_bruts"]], mono=(0, 2)),
        "tables": _table(["Table", "Lignes", "Colonnes", "Empreinte SHA-256 du contenu", "Motif"],
                         [[t["table"], fr_int(t["rows"]), t["columns"], t["sha256"],
                           chr(ord("a") + reasons.index(t["reason"]))]
                          for t in det["tables"]], mono=(0, 3)),
        "duckdb_file": _table(["", "Fichier", "Taille (octets)", "Empreinte SHA-256"],
                              [[label, f["path"], fr_int(f["size_bytes"]), f["sha256"]]
                               for label, f in (("avant", wh_before), ("après", wh_after)) if f],
                              "Aucune base de données.", mono=(1, 3)),
        "kept_tables": _table(["Table", "Lignes", "Empreinte SHA-256", "Après destruction", "Motif"], kept_rows,
                              "Aucune table conservée.", mono=(2,)),
        "reports": _table(["Document", "Taille", "Empreinte SHA-256", "Après destruction", "Motif"],
                          [[r["path"], fr_bytes(r["size_bytes"]), r["sha256"],
                            "identique" if r["sha256_apres"] == r["sha256"] else "MODIFIÉ", r["reason"]]
                           for r in kept["rapports"]], "Aucun document.", mono=(0, 2)),
        "others": _table(["Élément", "Motif"], [[o["element"], o["motif"]] for o in kept["autres"]]),
        "scopes": _table(["Ce qui a été parcouru", "Comment"], [[s["what"], s["how"]] for s in scan.get("scopes", [])]),
        "hits": _table(["Emplacement", "Encodage", "Origine de la valeur", "Occurrences"],
                       [[h["path"], h["form"], h["origin"], h["count"]] for h in scan["hits"]], "", mono=(0,)),
        "assets": _table(["Actif", "Motif", "Matérialisations", "Partitions", "Première", "Dernière"],
                         [[a["asset_key"], a["reason"], a.get("materializations", 0),
                           ", ".join(a.get("partitions", [])),
                           fr_short(a.get("first_materialized_at", "")), fr_short(a.get("last_materialized_at", ""))]
                          for a in dag["actifs_purges"]], mono=(0,)),
        "runs": _table(["Exécution", "Début", "Statut", "Actifs concernés", "Fichiers"],
                       [[r["run_id"], fr_short(r["started_at"]), r["status"], ", ".join(r["assets"]),
                         len(r.get("files", []))]
                        for r in dag["runs_supprimes"]], mono=(0,)),
        "files": _table(["Fichier", "Taille (octets)", "Empreinte SHA-256 avant destruction"],
                        [[f["path"], fr_int(f["size_bytes"]), f["sha256"]] for f in run_files], mono=(0, 2)),
    }
    return _environment().get_template("certificate.html.j2").render(context)


def write_certificate(d, scan: ScanReport, finished: dt.datetime) -> dict:
    """Both files of the procès-verbal (JSON, then HTML, each written atomically); its data."""
    cert = build_certificate(d, scan, finished)
    d.json_path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(d.json_path, cert)
    tmp = d.html_path.with_name(d.html_path.name + ".tmp")
    tmp.write_text(render_certificate_html(cert), encoding="utf-8")
    os.replace(tmp, d.html_path)
    return cert
