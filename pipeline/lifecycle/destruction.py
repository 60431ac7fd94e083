"""The destruction itself: resumable steps recorded in a journal.

inventory (before anything is touched) → derived sentinels (memory only) → raw files
shredded → warehouse rewritten with what is kept → Dagster purged (through the storage
adapter) → markers in the UI → residue scan → certificate. Each step is idempotent; a run
killed half-way resumes from the journal.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from pipeline.lifecycle import verification
from pipeline.lifecycle.certificate import status_of, write_certificate
from pipeline.lifecycle.dagster_storage import DagsterStorage
from pipeline.lifecycle.dates import iso, now
from pipeline.lifecycle.gate import DestructionError, certificate_paths, destruction_record, journal_path, marker_path
from pipeline.lifecycle.journal import Journal, os_user
from pipeline.lifecycle.markers import destroyed_observation, restated_materialization, restatements
from pipeline.lifecycle.rules import REPORT_REASON, purged_asset_keys, touched_asset_keys
from pipeline.lifecycle.scanner import ScanReport, Sentinel, public_text
from pipeline.lifecycle.shredder import (
    fsync_dir,
    overwrite_file,
    sha256_file,
    shred_file,
    shred_tree,
    write_json_atomic,
)
from pipeline.lifecycle.warehouse import (
    copy_kept,
    derive_sentinels,
    kept_text_values,
    table_digests,
    warehouse_inventory,
    warehouse_inventory_empty,
)
from pipeline.settings import Paths, project_paths
from pipeline.study import Study


@dataclass
class Outcome:
    study: Study
    journal: Journal
    scan: ScanReport
    certificate_html: Path
    certificate_json: Path
    already_done: bool = False
    certificate: dict = field(default_factory=dict)


class Destruction:
    """One attempt at destroying the study's data; every step is idempotent and resumes."""

    def __init__(
        self,
        *,
        study: Study,
        instance: dg.DagsterInstance,
        graph,
        warehouse_db: Path,
        lock: Callable[[], Any],
        log,
        run_id: str,
        operator: str = "",
        sentinels: list[str] | None = None,
        paths: Paths | None = None,
    ):
        self.study = study
        self.instance = instance
        self.graph = graph
        self.db = warehouse_db
        self.lock = lock
        self.log = log
        self.run_id = run_id
        self.operator = operator.strip()
        self.given = list(sentinels or [])
        self.paths = paths or project_paths()
        root = getattr(instance, "root_directory", None)
        if not root or instance.is_ephemeral:
            raise DestructionError(
                "the destruction runs on the project's persistent Dagster instance only (DAGSTER_HOME): "
                "an ephemeral instance's storage could not be purged nor scanned"
            )
        self.home = Path(root).resolve()
        self.storage = DagsterStorage(instance, self.home)
        self.journal = Journal(journal_path(study.study_id, self.paths), study.study_id, on_mark=self.checkpoint)
        self.derived: list[str] = []  # in memory only
        self.html_path, self.json_path = certificate_paths(study.study_id, self.paths)

    # -- helpers --
    def checkpoint(self, name: str) -> None:
        """Called at each resumable point (`inventory`, `raw_file:<n>`, `raw_files`, `warehouse_copied`,
        `warehouse_old_overwritten`, `warehouse`, `dagster`, `markers`): nothing in production; the
        tests replace it to kill the run there (tests/test_lifecycle.py)."""

    def show(self, path: Path) -> str:
        """A path as the certificate shows it: relative to the project or DAGSTER_HOME."""
        path = Path(path)
        for base, label in ((self.paths.root, ""), (self.home, "DAGSTER_HOME/")):
            try:
                return label + str(path.resolve().relative_to(base.resolve()))
            except ValueError:
                continue
        return str(path)

    def file_item(self, path: Path) -> dict:
        return {"path": self.show(path), "size_bytes": path.stat().st_size, "sha256": sha256_file(path)}

    def raw_files(self) -> list[Path]:
        raw = self.paths.raw
        if not raw.exists():
            return []
        return [
            p for p in sorted(raw.rglob("*"))
            if (p.is_file() or p.is_symlink()) and not (p.parent == raw and p.name.upper().startswith("README"))
        ]

    def report_files(self) -> list[Path]:
        reports = self.paths.reports
        if not reports.exists():
            return []
        own = {self.html_path.name, self.json_path.name}
        return [p for p in sorted(reports.rglob("*")) if p.is_file() and p.name not in own]

    # -- the run --
    def run(self) -> Outcome:
        record = destruction_record(self.study.study_id, self.paths)
        self.close_dead_attempts()
        self.journal.data["attempts"].append({
            "run_id": self.run_id, "started_at": iso(), "executed_by": os_user(), "operator": self.operator,
            "host": socket.gethostname(), "pid": os.getpid(),
        })
        self.journal.save()
        if record and self.journal.done("certificate"):
            return self.verify_again()
        self.journal.data.pop("paused_at", None)
        for step in (self.step_inventory, self.step_derive, self.step_raw_files, self.step_warehouse,
                     self.step_dagster, self.step_markers, self.step_compact):
            started = time.monotonic()
            step()
            self.log.debug(f"{step.__name__}: {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        scan = self.step_scan()
        self.log.debug(f"step_scan: {time.monotonic() - started:.1f} s")
        return self.step_certificate(scan)

    def close_dead_attempts(self) -> None:
        """An earlier attempt killed half-way stays 'started' in Dagster: mark it failed (and free
        what it held) once its process is gone; refuse to run beside one still alive."""
        for attempt in self.journal.data["attempts"]:
            run_id, pid = attempt.get("run_id"), attempt.get("pid")
            if not run_id or run_id == self.run_id or not pid or attempt.get("host") != socket.gethostname():
                continue
            if not self.storage.run_is_live(run_id):
                continue
            if pid != os.getpid() and _pid_alive(pid):
                raise DestructionError(
                    f"an earlier destruction run ({run_id}, process {pid}) is still running: wait for it or stop it"
                )
            self.storage.fail_run(
                run_id, f"interrupted before the end; the destruction was resumed by run {self.run_id}"
            )
            attempt["outcome"] = "interrompue"

    def verify_again(self) -> Outcome:
        """Already destroyed: files found in raw/ since (a copy of CAF data has no place in a
        closed study: a `make run` that once generated the sample there, a file dropped late) are
        destroyed as the others were, then the residue scan again, their fingerprints included.
        The certificate is written again only when what it says changes (files destroyed, a NON
        VÉRIFIÉE one verified with given values, traces found since), so that a document already
        sent is not rewritten for nothing; the journal keeps each check."""
        check = {"run_id": self.run_id, "at": iso(), "operator": self.operator, "raw_files_destroyed": []}
        self.journal.data.setdefault("verifications", []).append(check)
        for path in self.raw_files():
            item = self.file_item(path)
            check["raw_files_destroyed"].append(item)
            self.journal.save()  # its fingerprint first: a copy of it is searched for below
            shred_file(path)
            item["destroyed_at"] = iso()
        self.remove_empty_raw_folders()
        if check["raw_files_destroyed"]:
            self.log.warning(f"raw/: {len(check['raw_files_destroyed'])} file(s) that came after the destruction "
                             "overwritten then deleted")
        scan = self.scan(self.given_sentinels())
        check.update({"verdict": scan.verdict, "clean": scan.clean, "conclusive": scan.conclusive,
                      "sentinels_given": scan.sentinels_given, "hits": scan.hits, "files_scanned": scan.files_scanned})
        self.journal.save()
        previous = json.loads(self.json_path.read_text(encoding="utf-8")) if self.json_path.exists() else {}
        changed = bool(check["raw_files_destroyed"]) or (
            status_of(scan) != previous.get("status") and (scan.conclusive or bool(scan.hits)))
        certificate = write_certificate(self, scan, now()) if changed or not previous else previous
        return Outcome(self.study, self.journal, scan, self.html_path, self.json_path, already_done=True,
                       certificate=certificate)

    def given_sentinels(self) -> list[Sentinel]:
        return [Sentinel(t, "fourni") for t in self.given]

    # -- step 1: what there is, before anything goes --
    def step_inventory(self) -> None:
        if self.journal.done("inventory"):
            self.log.info("inventory: already taken by an earlier attempt, reused")
            return
        inv = self.journal.inventory
        inv["raw_files"] = [dict(self.file_item(p), destroyed_at="") for p in self.raw_files()]
        inv["reports_kept"] = [dict(self.file_item(p), reason=REPORT_REASON) for p in self.report_files()]
        inv["warehouse_file"] = self.file_item(self.db) if self.db.exists() else None
        if self.db.exists():
            with self.lock():
                con = duckdb.connect(str(self.db), read_only=True)
                try:
                    inv["warehouse"] = warehouse_inventory(con)
                finally:
                    con.close()
        else:
            inv["warehouse"] = warehouse_inventory_empty()
        purged = purged_asset_keys(self.graph)
        inv["assets_purged"] = []
        for key, reason in sorted(purged.items(), key=lambda kv: kv[0].to_user_string()):
            summary = self.storage.materialization_summary(key)
            inv["assets_purged"].append(dict({"asset_key": key.to_user_string(), "reason": reason}, **summary))
        runs = self.storage.runs_touching(touched_asset_keys(self.graph), {self.run_id} | self.own_runs())
        inv["runs_planned"] = len(runs)
        inv["restate"] = restatements(self.graph, self.storage, {r["run_id"] for r in runs}, set(purged))
        self.journal.mark("inventory")
        self.log.info(
            f"inventory: {len(inv['raw_files'])} raw file(s), "
            f"{len(inv['warehouse']['tables_destroyed'])} table(s) to destroy, "
            f"{len(inv['warehouse']['tables_kept'])} kept, {len(inv['warehouse']['tables_reduced'])} reduced, "
            f"{len(inv['assets_purged'])} Dagster asset(s) to purge, {len(runs)} run(s) to delete"
        )

    def own_runs(self) -> set[str]:
        return {a["run_id"] for a in self.journal.data["attempts"]}

    # -- step 2: values to scan for, derived from the data (memory only) --
    def step_derive(self) -> None:
        if not self.db.exists():
            self.journal.results["derivation"] = {"state": "no_warehouse"}
            self.journal.save()
            return
        baseline = self.baseline_text()
        try:
            with self.lock():
                con = duckdb.connect(str(self.db), read_only=True)
                try:
                    kept = kept_text_values(con)

                    def exclude(value: str) -> bool:
                        return value in kept or value in baseline

                    self.derived, self.journal.results["derivation"] = derive_sentinels(con, exclude)
                finally:
                    con.close()
        except duckdb.Error:
            self.derived = []
            self.journal.results["derivation"] = {"state": "unreadable"}
            self.log.warning("derived sentinels: the warehouse is being rewritten by an earlier attempt; "
                             "only the given sentinels are searched in this attempt")
        self.journal.results.setdefault("derived_sentinels_first_attempt", len(self.derived))
        self.journal.results["derived_sentinels"] = len(self.derived)
        self.journal.save()
        self.log.info(f"residue scan: {len(self.derived)} value(s) derived from the data, kept in memory only")

    def baseline_text(self) -> str:
        """Text of what is public or kept: a value found there is not distinctive of the CAF data."""
        return public_text(self.paths, data_dirs={self.paths.raw.resolve(), self.db.parent.resolve(), self.home},
                           home=self.home)

    # -- step 3: raw files --
    def step_raw_files(self) -> None:
        if self.journal.done("raw_files"):
            return
        items = self.journal.inventory["raw_files"]
        known = {i["path"] for i in items}
        for path in self.raw_files():  # files that arrived since the inventory, if any
            if self.show(path) not in known:
                items.append(dict(self.file_item(path), destroyed_at="", note="apparu après l'inventaire"))
        self.journal.save()
        for n, item in enumerate(items, start=1):
            if item.get("destroyed_at"):
                continue
            path = self.resolve(item["path"])
            shred_file(path)
            item["destroyed_at"] = iso()
            self.journal.save()
            self.checkpoint(f"raw_file:{n}")
        self.journal.results["raw_folders_removed"] = self.remove_empty_raw_folders()
        self.log.info(f"raw files: {len(items)} overwritten then deleted")
        self.journal.mark("raw_files")

    def remove_empty_raw_folders(self) -> list[str]:
        removed = []
        raw = self.paths.raw
        if raw.exists():
            for folder in sorted((p for p in raw.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                if not any(folder.iterdir()):
                    folder.rmdir()
                    removed.append(self.show(folder))
        return removed

    def resolve(self, shown: str) -> Path:
        if shown.startswith("DAGSTER_HOME/"):
            return self.home / shown[len("DAGSTER_HOME/"):]
        path = Path(shown)
        return path if path.is_absolute() else self.paths.root / path

    # -- step 4: the warehouse, rewritten --
    def step_warehouse(self) -> None:
        if self.journal.done("warehouse"):
            return
        state = self.journal.results.setdefault("warehouse", {})
        fresh = self.db.with_name(self.db.name + ".rewrite")
        with self.lock():
            if not self.db.exists() and not fresh.exists():
                state["note"] = "aucune base DuckDB"
                self.journal.mark("warehouse")
                return
            if not state.get("copied") or not fresh.exists():
                if state.get("old_overwritten"):
                    if self.db.exists() and sha256_file(self.db) == state.get("fresh_sha256"):
                        state["replaced"] = iso()  # killed between the replace and the journal
                    else:
                        raise DestructionError(
                            f"{self.show(self.db)}: the old file was overwritten but its rewritten copy "
                            f"{self.show(fresh)} is missing; restore the warehouse from the published "
                            "outputs before re-running"
                        )
                else:
                    if fresh.exists():
                        shred_file(fresh)  # a copy interrupted half-way
                    copy_kept(self.db, fresh, self.journal.inventory["warehouse"])
                    with open(fresh, "rb+") as handle:
                        os.fsync(handle.fileno())
                    fsync_dir(fresh.parent)
                    self.journal.save()
                    state["copied"] = iso()
                    state["fresh_sha256"] = sha256_file(fresh)
                    self.journal.save()
                    self.checkpoint("warehouse_copied")
            if not state.get("replaced"):
                if not state.get("old_overwritten"):
                    for extra in (self.db.with_name(self.db.name + ".wal"),):
                        if extra.exists():
                            shred_file(extra)
                    if self.db.exists():
                        overwrite_file(self.db)
                    state["old_overwritten"] = iso()
                    self.journal.save()
                    self.checkpoint("warehouse_old_overwritten")
                os.replace(fresh, self.db)
                fsync_dir(self.db.parent)
                state["replaced"] = iso()
                self.journal.save()
            state["after"] = self.file_item(self.db)
        stamp = iso()
        for item in self.journal.inventory["warehouse"]["tables_destroyed"]:
            item.setdefault("destroyed_at", stamp)
        self.log.info(f"warehouse: rewritten with the kept tables only ({state['after']['size_bytes']} bytes)")
        self.journal.mark("warehouse")


    # -- step 5: Dagster --
    def step_dagster(self) -> None:
        if self.journal.done("dagster"):
            return
        res = self.journal.results.setdefault("dagster", {"runs_deleted": [], "assets_wiped": [],
                                                          "runless_events_deleted": 0, "io_storage": [],
                                                          "sqlite_vacuumed": []})
        storage = self.storage
        purged = purged_asset_keys(self.graph)
        runs = storage.runs_touching(touched_asset_keys(self.graph), {self.run_id} | self.own_runs())
        done_ids = {r["run_id"] for r in res["runs_deleted"]}
        for run in runs:
            if run["run_id"] in done_ids:
                continue
            run["files"] = [self.file_item(p) for p in storage.run_files(run["run_id"])]
            storage.delete_run(run["run_id"])
            run["deleted_at"] = iso()
            res["runs_deleted"].append(run)
            self.journal.save()
        # check results recorded by the deleted runs; then the events recorded outside runs,
        # before the wipe records its own (key only) events there
        storage.delete_check_executions([r["run_id"] for r in res["runs_deleted"]])
        res["runless_events_deleted"] += storage.delete_runless_events(set(purged))
        # the assets' own history (cached last events, check executions, mirrored events)
        for key in sorted(purged, key=lambda k: k.to_user_string()):
            if storage.wipe_asset(key):
                res["assets_wiped"].append(key.to_user_string())
        # IO-manager files of the purged assets
        for key in purged:
            path = storage.io_manager_path(key)
            if path.exists():
                items = [self.file_item(p) for p in sorted(path.rglob("*")) if p.is_file()] if path.is_dir() \
                    else [self.file_item(path)]
                shred_tree(path) if path.is_dir() else shred_file(path)
                res["io_storage"].extend(items)
        self.log.info(
            f"Dagster: {len(res['runs_deleted'])} run(s) deleted with their event logs and captured output, "
            f"{len(res['assets_wiped'])} asset(s) wiped"
        )
        self.journal.mark("dagster")

    def step_compact(self) -> None:
        """What the database engine keeps of deleted rows, removed: at every attempt (idempotent),
        so that a run resumed after a failed scan compacts again what was cleaned meanwhile."""
        res = self.journal.results.setdefault("dagster", {})
        compacted = self.storage.compact(self.show)
        res["storage"] = compacted["storage"]
        res["sqlite_vacuumed"] = compacted.get("sqlite_vacuumed", [])
        if compacted["storage"] == "postgres":
            res["postgres"] = {k: v for k, v in compacted.items() if k != "storage"}
            for refusal in compacted["refused"]:
                self.log.warning(f"Dagster's PostgreSQL database: {refusal}")
        self.journal.save()
        self.log.info(f"Dagster storage ({compacted['storage']}) compacted")


    # -- step 6: what the UI shows afterwards --
    def step_markers(self) -> None:
        if self.journal.done("markers"):
            return
        moment = now()
        cert = self.show(self.html_path)
        runs_by_asset: dict[str, int] = {}
        for run in self.journal.results.get("dagster", {}).get("runs_deleted", []):
            for key in run["assets"]:
                runs_by_asset[key] = runs_by_asset.get(key, 0) + 1
        for item in self.journal.inventory["assets_purged"]:
            if not item.get("marked_at"):
                self.instance.report_runless_asset_event(destroyed_observation(
                    item, self.study.study_id, cert, moment, runs_by_asset.get(item["asset_key"], 0)))
                item["marked_at"] = iso(moment)
                self.journal.save()
        after_tables = self.kept_table_digests()
        for item in self.journal.inventory.get("restate", []):
            if not item.get("restated_at"):
                self.instance.report_runless_asset_event(
                    restated_materialization(item, self.study.study_id, cert, after_tables))
                item["restated_at"] = iso()
                self.journal.save()
        self.journal.mark("markers")

    def kept_table_digests(self) -> dict[str, tuple[int, str]]:
        if not self.db.exists():
            return {}
        out = {}
        with self.lock():
            con = duckdb.connect(str(self.db), read_only=True)
            try:
                out = table_digests(con)
            finally:
                con.close()
        return out

    # -- step 7: the residue scan (`pipeline.lifecycle.verification`) --
    def scan(self, sentinels: list[Sentinel]) -> ScanReport:
        return verification.scan(self, sentinels)

    def step_scan(self) -> ScanReport:
        sentinels = self.given_sentinels() + [Sentinel(t, "dérivé") for t in self.derived]
        report = self.scan(sentinels)
        self.journal.data["scan"] = report.to_dict()
        first = self.journal.results.get("derived_sentinels_first_attempt", 0)
        self.journal.data["scan"]["derived_in_earlier_attempts"] = (
            first if len(self.journal.data["attempts"]) > 1 else 0
        )
        self.journal.save()
        if not sentinels:
            self.log.warning("residue scan: no value of the data to search for (none given, none derived): "
                             "not conclusive, the certificate says so")
        self.log.info(
            f"residue scan: {report.files_scanned} file(s), {report.bytes_scanned} bytes, "
            f"{report.tables_scanned} table(s), {len(sentinels)} sentinel(s), {report.copies_searched} file "
            "fingerprint(s): "
            + (f"{sum(h['count'] for h in report.hits)} HIT(S)" if report.hits else
               "no residue" if report.conclusive else "nothing found, NOT CONCLUSIVE")
        )
        return report

    # -- step 8: the certificate --
    def step_certificate(self, scan: ScanReport) -> Outcome:
        finished = now()
        cert = write_certificate(self, scan, finished)
        # destroyed once no trace is found, even if nothing could be searched for: the data are
        # gone, the certificate says the check was not conclusive, a re-run with values verifies
        if not scan.hits:
            self.journal.data["completed_at"] = iso(finished)
            self.journal.mark("certificate")
            write_json_atomic(marker_path(self.study.study_id, self.paths), {
                "study_id": self.study.study_id,
                "destroyed_at": iso(finished),
                "certificate_html": self.show(self.html_path),
                "certificate_json": self.show(self.json_path),
                "run_id": self.run_id,
            })
        return Outcome(self.study, self.journal, scan, self.html_path, self.json_path, certificate=cert)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

