"""The end of the study: refusals, destruction of every CAF data, residue scan, certificate.

The end-to-end test puts a unique sentinel string in every sample file (an extra column and a
commune's label), runs the whole pipeline, leaks the sentinel into Dagster's storage the way
a careless debug session would (stdout, run logs, materialization metadata, a runless event),
checks it is there, closes the study, kills a destruction half-way, resumes it, and then
searches every byte under the project folder and DAGSTER_HOME: zero hits.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
import zipfile
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipeline import lifecycle
from pipeline.lifecycle import Sentinel, load_study, residue_scan, set_study_status
from pipeline.sample import generate
from pipeline.settings import PACKAGE_ROOT
from tests.conftest import SEED
from tests.helpers import failure_message, materialize, query, tree_digest

DESTROY = "study_data_destruction"


def persistent_instance() -> dg.DagsterInstance:
    """The test's DAGSTER_HOME (set by the `project` fixture), configured like the project's."""
    home = Path(os.environ["DAGSTER_HOME"])
    shutil.copy(PACKAGE_ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    return dg.DagsterInstance.get()


def destroy(instance, study_id: str, sentinels=(), operator: str = "Service Petite Enfance (test)"):
    """The destruction job, launched as `make destroy` launches it."""
    from pipeline.launch import launch_destruction

    return launch_destruction(instance, study_id, operator=operator, sentinels=list(sentinels)).result


def close_study(days_ago: int = 30) -> None:
    set_study_status("closed", dt.date.today() - dt.timedelta(days=days_ago))


def files_holding(root: Path, text: str) -> list[str]:
    """Every file under `root` whose bytes (or zip members) hold `text` in UTF-8 or UTF-16."""
    forms = [text.encode("utf-8"), text.encode("utf-16-le"), text.encode("utf-16-be")]
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        blobs = [data]
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                blobs += [archive.read(name) for name in archive.namelist()]
        if any(form in blob for form in forms for blob in blobs):
            found.append(str(path.relative_to(root)))
    return found


PAUSING_DESTROY = textwrap.dedent(
    """
    import pathlib, sys, time
    from pipeline.lifecycle.destruction import Destruction

    flag, at = pathlib.Path(sys.argv[1]), sys.argv[2]

    def pause(self, name):  # the test kills the process while it sleeps here
        if name == at:
            flag.write_text(name)
            while True:
                time.sleep(0.5)

    Destruction.checkpoint = pause
    from pipeline.__main__ import main
    sys.exit(main(["destroy", *sys.argv[3:]]))
    """
)


def kill_destruction_at(checkpoint: str, study_id: str, sentinel: str) -> None:
    """Run `python -m pipeline destroy` in a subprocess and SIGKILL it at `checkpoint`
    (the subprocess replaces `Destruction.checkpoint`, a no-op in production, by a pause)."""
    flag = Path(os.environ["DAGSTER_HOME"]).parent / f"paused-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSING_DESTROY, str(flag), checkpoint, "--study-id", study_id, "--sentinel", sentinel,
         "--operator", "Service Petite Enfance (test)"],
        cwd=PACKAGE_ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while not flag.exists():
            assert proc.poll() is None, proc.stderr.read().decode(errors="replace")
            assert time.monotonic() < deadline, f"the destruction never reached {checkpoint}"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        flag.unlink(missing_ok=True)


def published_snapshot(project: Path) -> dict[str, list]:
    """Every table of schema `published` (none yet while that stage is being built)."""
    db = project / "warehouse" / "warehouse.duckdb"
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'published'").fetchall()
        return {t: con.execute(f"SELECT * FROM published.{t} ORDER BY ALL").fetchall() for (t,) in tables}
    finally:
        con.close()


def schemas(project: Path) -> set[str]:
    return {s for (s,) in query(project, "SELECT DISTINCT schema_name FROM duckdb_tables()")}


# ---- refusals (no data needed) ----------------------------------------------------------------


def test_destruction_refused_unless_closed_published_and_named(project):
    instance = persistent_instance()
    study = load_study()

    result = destroy(instance, study.study_id)  # the study is open
    message = failure_message(result)
    assert not result.success
    assert "destruction refused" in message and "status is 'open'" in message and "published_on is empty" in message

    set_study_status("closed", None)
    message = failure_message(destroy(instance, study.study_id))
    assert "published_on is empty" in message and "status is" not in message

    set_study_status("closed", dt.date.today() + dt.timedelta(days=10))
    assert "in the future" in failure_message(destroy(instance, study.study_id))

    close_study()
    message = failure_message(destroy(instance, "another-study"))
    assert "'another-study'" in message and study.study_id in message
    message = failure_message(destroy(instance, ""))
    assert "must repeat the study id" in message

    # sentinels are never accepted in clear: Dagster keeps the run config on disk
    from pipeline.definitions import defs

    result = defs.resolve_job_def("destruction").execute_in_process(
        instance=instance, raise_on_error=False,
        run_config={"ops": {DESTROY: {"config": {"study_id": study.study_id, "operator": "X",
                                                  "sentinels": ["plain-text"]}}}},
    )
    assert "not encoded" in failure_message(result)
    assert not lifecycle.journal_path(study.study_id).exists()  # nothing was started


def test_ingest_refused_for_a_closed_study(project):
    assert lifecycle.ingest_refusal() is None
    close_study()
    why = lifecycle.ingest_refusal()
    assert why and "is closed" in why and "make destroy STUDY_ID=" in why
    result = materialize(["raw_bca"], "2017")
    assert not result.success and "is closed" in failure_message(result)
    with pytest.raises(dg.Failure, match="is closed"):
        lifecycle.assert_ingest_allowed()


def test_destruction_is_never_automated_nor_part_of_run(project, monkeypatch):
    from pipeline.__main__ import run_all
    from pipeline.definitions import defs

    # an op job, not an asset: "Materialize all" and every asset selection leave it out
    assert dg.AssetKey(DESTROY) not in defs.resolve_asset_graph().get_all_asset_keys()
    assert [n.name for n in defs.resolve_job_def("destruction").nodes] == [DESTROY]
    automations = list(defs.schedules or []) + list(defs.sensors or [])
    assert all("destruction" not in {t.job_name for t in getattr(a, "targets", [])} for a in automations)
    selections = []

    class Done:
        success, run_id, all_events = True, "0" * 36, []

    def fake_execute(job, *args, **kwargs):  # every job `make run` launches, not run
        selections.append(set(job.asset_layer.selected_asset_keys))
        return Done()

    monkeypatch.setattr(dg.JobDefinition, "execute_in_process", fake_execute)
    run_all()
    assert selections and all(dg.AssetKey(DESTROY) not in s for s in selections)

    refused = lifecycle.destruction_problems(load_study(), "x", {"dagster/sensor_name": "raw_files"})
    assert any("schedule, sensor or automation" in p for p in refused)


# ---- the residue scan ----------------------------------------------------------------------


def test_residue_scan_finds_every_form_and_reports_no_value(tmp_path):
    secret = "Écluse-" + uuid.uuid4().hex[:8]
    (tmp_path / "a.txt").write_bytes(b"xx" + secret.encode("utf-16-le") + b"yy")
    (tmp_path / "b.csv").write_bytes(secret.encode("cp1252"))
    (tmp_path / "c.json").write_text(json.dumps({"k": secret}))  # \u00c9 escaped, as Dagster's serdes writes it
    with zipfile.ZipFile(tmp_path / "d.xlsx", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/sharedStrings.xml", f"<t>{secret}</t>")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "skipped.txt").write_text(secret)
    (tmp_path / "clean.txt").write_text("nothing here")
    report = residue_scan([tmp_path], [Sentinel(secret, "fourni")])
    assert {h["path"].split("!")[0].rsplit("/", 1)[-1] for h in report.hits} == {"a.txt", "b.csv", "c.json", "d.xlsx"}
    assert not report.clean and secret not in json.dumps(report.to_dict(), ensure_ascii=False)
    assert residue_scan([tmp_path], [Sentinel("absent-" + secret, "fourni")]).clean


def test_a_residue_fails_the_destruction_loudly(project):
    instance = persistent_instance()
    study = load_study()
    close_study()
    sentinel = "LEAK" + uuid.uuid4().hex[:12].upper()
    leak = project / "exports" / "copie.txt"
    leak.parent.mkdir()
    leak.write_bytes(("commune: " + sentinel).encode("utf-16"))

    result = destroy(instance, study.study_id, [sentinel])
    message = failure_message(result)
    assert not result.success and "RESIDUE FOUND" in message and "exports/copie.txt" in message
    assert sentinel not in message
    html_path, json_path = lifecycle.certificate_paths(study.study_id)
    cert = json.loads(json_path.read_text(encoding="utf-8"))
    assert cert["status"] == "ÉCHEC" and "NE PAS TRANSMETTRE" in html_path.read_text(encoding="utf-8")
    assert lifecycle.destruction_record(study.study_id) is None  # not destroyed until the scan is clean

    leak.unlink()
    assert destroy(instance, study.study_id, [sentinel]).success
    assert json.loads(json_path.read_text(encoding="utf-8"))["status"] == "TERMINÉE"
    assert lifecycle.destruction_record(study.study_id)


@pytest.mark.integration
def test_killed_after_overwriting_the_old_warehouse_resumes(project):
    """The most delicate moment: the old DuckDB file overwritten, its rewritten copy not yet in place."""
    instance = persistent_instance()
    study = load_study()
    sentinel = "KILL" + uuid.uuid4().hex[:12].upper()
    (project / "raw" / "sous-dossier").mkdir()
    (project / "raw" / "sous-dossier" / "envoi.csv").write_text(f"code;nom\n62119;{sentinel}\n", encoding="cp1252")
    con = duckdb.connect(str(project / "warehouse" / "warehouse.duckdb"))
    con.execute("CREATE SCHEMA raw; CREATE SCHEMA published; CREATE SCHEMA confidential")
    con.execute(f"CREATE TABLE raw.envoi AS SELECT '62119' AS code, '{sentinel}' AS nom")
    con.execute(f"CREATE TABLE confidential.masking_log AS SELECT 'x' AS rule, '{sentinel}' AS note")
    con.execute("CREATE TABLE published.indicators(zone VARCHAR PRIMARY KEY, value DOUBLE)")
    con.execute("INSERT INTO published.indicators VALUES ('62119', 12.5), ('62160', NULL)")
    con.close()
    close_study()

    kill_destruction_at("warehouse_old_overwritten", study.study_id, sentinel)
    with pytest.raises(duckdb.Error):
        duckdb.connect(str(project / "warehouse" / "warehouse.duckdb"), read_only=True).close()
    result = destroy(instance, study.study_id, [sentinel])
    assert result.success, failure_message(result)
    assert query(project, "SELECT * FROM published.indicators ORDER BY zone") == [("62119", 12.5), ("62160", None)]
    assert schemas(project) == {"published"}
    assert not (project / "raw" / "sous-dossier").exists()
    assert files_holding(project, sentinel) == [] and files_holding(Path(os.environ["DAGSTER_HOME"]), sentinel) == []
    cert = json.loads(lifecycle.certificate_paths(study.study_id)[1].read_text(encoding="utf-8"))
    assert [a.get("outcome") for a in cert["operation"]["tentatives"]] == ["interrompue", None]
    assert {t["table"] for t in cert["detruit"]["tables"]} == {"raw.envoi", "confidential.masking_log"}
    # the killed run no longer shows as running
    assert not instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))


# ---- end to end ------------------------------------------------------------------------------


@pytest.mark.integration
def test_destruction_end_to_end(project, monkeypatch):
    from pipeline.__main__ import run_all
    from pipeline.definitions import defs
    from pipeline.defs import ingest as ingest_module

    sentinel = "SENTINELLE" + uuid.uuid4().hex[:12].upper()
    generate(project / "raw", seed=SEED, sentinel=sentinel)
    raw_digest = tree_digest(project / "raw")
    instance = persistent_instance()
    home = Path(os.environ["DAGSTER_HOME"])

    assert run_all() == 0  # everything `make run` materializes

    # A careless debug session: the sentinel printed (captured stdout/stderr), logged as a warning
    # (run log) and kept in the materialization metadata of a confidential asset; and a note
    # reported from outside any run.
    real_extract = ingest_module.extract

    def leaky_extract(*args, **kwargs):
        table = real_extract(*args, **kwargs)
        print(f"debug: {sentinel}")
        print(f"debug: {sentinel}", file=sys.stderr)
        table.warnings.append(f"debug: {sentinel}")
        return table

    monkeypatch.setattr(ingest_module, "extract", leaky_extract)
    assert materialize(["raw_bca", "stg_bca"], "2017", instance).success
    monkeypatch.setattr(ingest_module, "extract", real_extract)
    instance.report_runless_asset_event(dg.AssetObservation("raw_bcecpaj", metadata={"note": f"vu {sentinel}"}))

    # The sentinel is where the test says it is (else a zero below would prove nothing).
    assert query(project, f"SELECT count(*) FROM raw.bca_2017 WHERE COMMENTAIRE = '{sentinel}'")[0][0] == 1
    in_home = files_holding(home, sentinel)
    assert any("compute_logs" in p for p in in_home), in_home
    assert any(p.endswith("index.db") for p in in_home) and any(p.endswith(".db") and "runs/" in p for p in in_home)
    assert any(p.startswith("raw/") for p in files_holding(project, sentinel))

    published = published_snapshot(project)
    reports = tree_digest(project / "reports")
    # one fingerprint of the published table: out_indicators' metadata, the reports' "Version des
    # données", the manifest; the certificate must list the same (checked below)
    fingerprint = instance.get_latest_materialization_event(
        dg.AssetKey("out_indicators")).asset_materialization.metadata["fingerprint"].value
    manifest = json.loads((project / "reports" / "manifeste_conformite.json").read_text(encoding="utf-8"))
    assert manifest["published_table"]["fingerprint"] == fingerprint
    assert any(fingerprint[:12] in p.read_text(encoding="utf-8") for p in (project / "reports").glob("*.html"))
    graph = defs.resolve_asset_graph()
    purged = set(lifecycle.purged_asset_keys(graph))
    assert dg.AssetKey("raw_bca") in purged and dg.AssetKey("stg_bca") in purged
    assert dg.AssetKey("core_indicators") in purged  # writes confidential.indicators
    kept_keys = {
        k for k in graph.get_all_asset_keys()
        if k not in purged and graph.get(k).group_name != "lifecycle"
        and instance.fetch_materializations(k, limit=1).records
    }

    study = load_study()
    refused = destroy(instance, study.study_id, [sentinel])
    assert not refused.success and "status is 'open'" in failure_message(refused)
    close_study()
    refused = destroy(instance, "autre-etude", [sentinel])
    assert not refused.success and "'autre-etude'" in failure_message(refused)
    assert tree_digest(project / "raw") == raw_digest  # nothing touched by the refusals

    # A destruction killed half-way: raw files gone, the kept tables copied into a fresh file,
    # the old file not yet replaced.
    kill_destruction_at("warehouse_copied", study.study_id, sentinel)
    assert not [p for p in (project / "raw").rglob("*") if p.is_file()]
    assert (project / "warehouse" / "warehouse.duckdb.rewrite").exists()
    assert "raw" in schemas(project)
    assert lifecycle.ingest_refusal() and "not complete" in lifecycle.ingest_refusal()

    # The re-run completes.
    result = destroy(instance, study.study_id, [sentinel])
    assert result.success, failure_message(result)

    # Not one byte of the sentinel left, anywhere.
    assert files_holding(project, sentinel) == []
    assert files_holding(home, sentinel) == []

    # What is kept is unchanged; what is not kept is gone.
    assert schemas(project) <= {"published", "lineage"}
    ledger_columns = [
        c for (c,) in query(project, "SELECT column_name FROM duckdb_columns() WHERE table_name = 'ingest_ledger'")
    ]
    assert ledger_columns == ["source", "year", "file_name", "size_bytes", "sha256"]
    assert {f for (f,) in query(project, "SELECT DISTINCT file_name FROM lineage.ingest_ledger")} == set(raw_digest)
    assert published_snapshot(project) == published
    after = tree_digest(project / "reports")
    assert {k: after[k] for k in reports} == reports

    # The certificate: a document for the CAF, with its JSON twin.
    html_path, json_path = lifecycle.certificate_paths(study.study_id)
    cert = json.loads(json_path.read_text(encoding="utf-8"))
    page = html_path.read_text(encoding="utf-8")
    assert cert["status"] == "TERMINÉE" and cert["etude"]["identifiant"] == study.study_id
    assert "Procès-verbal de destruction des données" in page and "Aucune occurrence trouvée" in page
    assert "Service Petite Enfance (test)" in page and study.study_id in page
    destroyed_files = {Path(f["path"]).name: f["sha256"] for f in cert["detruit"]["fichiers_bruts"]}
    assert destroyed_files == raw_digest
    kept_published = next(t for t in cert["conserve"]["tables"] if t["table"] == "published.indicators")
    assert kept_published["sha256"] == kept_published["sha256_after"] == fingerprint and fingerprint in page
    tables = {t["table"] for t in cert["detruit"]["tables"]}
    assert "raw.bca_2017" in tables and "staging.bca" in tables and "confidential.indicators" in tables
    # the masking's and the audit's records (what a new year does not solve again) go with them
    assert {"confidential.masking_memo", "confidential.audit_memo"} <= tables
    scan = cert["controle_de_non_persistance"]
    assert scan["clean"] and scan["sentinels_given"] == 1
    assert scan["sentinels_derived"] >= 2  # at least the extra column's value and the commune's label
    assert len(cert["operation"]["tentatives"]) == 2  # the killed attempt and the one that completed
    assert cert["detruit"]["dagster"]["runs_supprimes"]
    assert result.output_for_node(DESTROY)["residue_scan_clean"] is True

    # Dagster: the confidential assets' history is gone, a "destroyed" observation says when;
    # the runs left are the destruction's own; the kept assets keep a materialization.
    assert instance.fetch_materializations(dg.AssetKey("raw_bca"), limit=5).records == []
    observation = instance.fetch_observations(dg.AssetKey("raw_bca"), limit=5).records[0]
    meta = observation.asset_observation.metadata
    assert "destroyed_at" in meta and meta["destruction_certificate"].value.endswith(html_path.name)
    assert "2017" in meta["partitions_destroyed"].value
    for record in instance.get_run_records():
        planned = {e.dagster_event.asset_key for e in instance.all_logs(
            record.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)}
        assert not planned, planned  # the destruction's own runs plan no asset
    for key in kept_keys:
        assert instance.fetch_materializations(key, limit=1).records, key

    # Afterwards: ingest refused with a clear message; a second destruction only re-verifies.
    refused = materialize(["raw_bca"], "2017", instance)
    assert not refused.success and "were destroyed" in failure_message(refused)
    again = destroy(instance, study.study_id, [sentinel])
    assert again.success
    assert "already_destroyed_on" in again.output_for_node(DESTROY)
    assert json.loads(json_path.read_text(encoding="utf-8")) == cert


# ---- the server variant: Dagster on PostgreSQL ------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("instance_storage", ["postgres"], indirect=True)
def test_make_destroy_on_postgres_leaves_nothing_in_the_database_nor_the_cluster_files(
    project, instance, pg_cluster, monkeypatch
):
    """Runs that read the data, a leaky debug session and a careless note in the instance's
    key-value table: the sentinel is in the database and in the cluster's files. `make destroy`
    (its scan searching for the values derived from the raw tables) fails on the residue left,
    naming the table; once it is removed, the re-run vacuums, checkpoints and switches the WAL
    again: the sentinel is found neither by SQL nor in any file."""
    from pipeline.defs import ingest as ingest_module

    database = os.environ["DAGSTER_PG_DB"]
    sentinel = "PGSENTINEL" + uuid.uuid4().hex[:12].upper()
    generate(project / "raw", seed=SEED, sentinel=sentinel)
    real_extract = ingest_module.extract

    def leaky_extract(*args, **kwargs):
        table = real_extract(*args, **kwargs)
        print(f"debug: {sentinel}")
        table.warnings.append(f"debug: {sentinel}")
        return table

    monkeypatch.setattr(ingest_module, "extract", leaky_extract)
    assert materialize(["raw_bca", "stg_bca"], "2017", instance).success
    monkeypatch.setattr(ingest_module, "extract", real_extract)
    instance.report_runless_asset_event(dg.AssetObservation("raw_bcecpaj", metadata={"note": f"vu {sentinel}"}))
    pg_cluster.sql("INSERT INTO kvs (key, value) VALUES ('debug-note', %s)", (f"vu {sentinel}",), database=database)
    pg_cluster.sql("CHECKPOINT")

    # the sentinel is where the test says it is (else the zeros below would prove nothing)
    planted = pg_cluster.count_everywhere(database, sentinel)
    assert "event_logs.event" in planted and "kvs.value" in planted, planted
    assert files_holding(pg_cluster.data_dir, sentinel)

    close_study()
    study_id = load_study().study_id

    def make_destroy() -> subprocess.CompletedProcess:
        return subprocess.run(["make", "-e", "-s", "destroy", f"STUDY_ID={study_id}", "OPERATOR=test postgres"],
                              cwd=PACKAGE_ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=600)

    failed = make_destroy()
    assert failed.returncode != 0 and "RESIDUE FOUND" in failed.stderr and "PostgreSQL :: kvs.value" in failed.stderr
    assert sentinel not in failed.stdout + failed.stderr
    assert pg_cluster.password not in failed.stdout + failed.stderr
    pg_cluster.sql("DELETE FROM kvs WHERE key = 'debug-note'", database=database)

    # resumed: the raw tables are gone, so nothing can be derived any more; the operator gives
    # the value to search for (`make destroy` runs this very command, without --sentinel)
    done = subprocess.run([sys.executable, "-m", "pipeline", "destroy", "--study-id", study_id, "--sentinel", sentinel,
                           "--operator", "test postgres"],
                          cwd=PACKAGE_ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.startswith("ok:"), done.stderr[-3000:]
    assert pg_cluster.count_everywhere(database, sentinel) == {}
    assert files_holding(pg_cluster.data_dir, sentinel) == []
    assert files_holding(project, sentinel) == [] and files_holding(Path(os.environ["DAGSTER_HOME"]), sentinel) == []

    cert = json.loads(lifecycle.certificate_paths(study_id)[1].read_text(encoding="utf-8"))
    assert cert["status"] == "TERMINÉE" and cert["detruit"]["dagster"]["stockage"] == "postgres"
    assert cert["controle_de_non_persistance"]["sentinels_given"] == 1  # the clean verdict searched for it
    pg = cert["detruit"]["dagster"]["postgresql"]
    assert {"event_logs", "asset_keys", "runs", "kvs"} <= set(pg["vacuum_full"]) and pg["wal_switches"] >= 3
    assert not pg["refused"]
    scopes = " | ".join(s["what"] for s in cert["controle_de_non_persistance"]["scopes"])
    assert "base PostgreSQL" in scopes and "fichiers du cluster PostgreSQL" in scopes
    page = lifecycle.certificate_paths(study_id)[0].read_text(encoding="utf-8")
    assert "VACUUM FULL" in page and "fichiers du cluster PostgreSQL" in page
    assert pg_cluster.password not in page + json.dumps(cert)
