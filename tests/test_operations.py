"""Safe operations on the warehouse and the instance: two runs at once, a run killed
mid-write, the compliance manifest reading the instance's records; on SQLite and on
PostgreSQL (`pytest -m postgres`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import dagster as dg
import duckdb
import pytest

from pipeline.settings import PACKAGE_ROOT
from tests.helpers import materialize, query, stop_group

pytestmark = pytest.mark.integration

RUNNER = textwrap.dedent(
    """
    import sys
    import dagster as dg
    from tests.helpers import materialize
    source, years = sys.argv[1], sys.argv[2:]
    instance = dg.DagsterInstance.get()  # the test's DAGSTER_HOME: SQLite or PostgreSQL
    for year in years:
        result = materialize([f"raw_{source}", f"stg_{source}"], year, instance)
        print(source, year, "ok" if result.success else "FAILED", flush=True)
        if not result.success:
            sys.exit(1)
    """
)


def _start(source: str, *years: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, source, *years],
        cwd=PACKAGE_ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_two_runs_started_together_both_finish(sample_project, instance):
    first, second = _start("bca", "2017", "2018"), _start("bcecpaj", "2017", "2018")
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    # on the project's instance the pool `warehouse` makes one step wait for the other ("Step
    # blocked by limit for pool warehouse"); no DuckDB lock error may show
    locked = [line for out in outputs for line in out.splitlines()
              if "lock" in line.lower() and "blocked by limit for pool warehouse" not in line.lower()]
    assert not locked, locked
    ledger = query(sample_project, "SELECT source, year FROM lineage.ingest_ledger ORDER BY ALL")
    assert ledger == [("bca", 2017), ("bca", 2018), ("bcecpaj", 2017), ("bcecpaj", 2018)]
    assert query(sample_project, "SELECT count(DISTINCT year) FROM staging.bcecpaj")[0][0] == 2
    runs = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
    assert len(runs) == 4  # both processes recorded their runs in the one instance


def test_run_killed_mid_write_leaves_the_previous_tables_and_a_rerun_completes(sample_project, instance):
    assert materialize(["raw_bca", "stg_bca"], "2017", instance).success
    before = query(sample_project, "SELECT count(*), sum(value) FROM staging.bca")
    raw_before = query(sample_project, "SELECT count(*) FROM raw.bca_2017")
    killed = 0
    for delay in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0):
        process = _start("bca", *["2017"] * 20)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed += process.returncode == -signal.SIGKILL
        # whatever the moment, the file opens and every table is a whole version
        assert query(sample_project, "SELECT count(*), sum(value) FROM staging.bca") == before
        assert query(sample_project, "SELECT count(*) FROM raw.bca_2017") == raw_before
    assert killed >= 4
    assert materialize(["raw_bca", "stg_bca"], "2017", instance).success
    assert query(sample_project, "SELECT count(*), sum(value) FROM staging.bca") == before


WRITER = textwrap.dedent(
    """
    import sys
    import duckdb, pandas as pd
    from pipeline.resources import replace_table
    con = duckdb.connect(sys.argv[1])
    version = 0
    while True:
        version += 1
        # a declared table (config/tables.yaml: the writer refuses any other), written whole each time
        frame = pd.DataFrame({"fingerprint": pd.Series(range(200_000)).astype(str), "year": 2020, "root": "x",
                              "record": str(version)}).astype({"year": "int32"})
        replace_table(con, "confidential.masking_memo", frame)
        print(version, flush=True)
    """
)


def test_a_transaction_is_all_or_nothing_under_sigkill(tmp_path):
    db = tmp_path / "w.duckdb"
    for delay in (0.05, 0.2, 0.45):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], cwd=PACKAGE_ROOT,
                                   stdout=subprocess.PIPE, text=True)
        process.stdout.readline()  # a first version is committed: now kill it while it writes the next
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        con = duckdb.connect(str(db), read_only=True)
        try:
            versions = con.sql("SELECT count(*), count(DISTINCT record) FROM confidential.masking_memo").fetchall()
        finally:
            con.close()
        assert versions == [(200_000, 1)]  # one whole version, never a mix or a half


def test_compliance_manifest_reads_the_instance_records(built_project, instance):
    """The manifest names the runs of this instance that produced the published table and
    passed the audit (on PostgreSQL as on SQLite)."""
    import json

    from pipeline.launch import register_years

    register_years(instance)
    result = materialize(["core_masking", "out_indicators", "out_manifeste_conformite"], None, instance)
    assert result.success
    manifest = json.loads((built_project / "reports" / "manifeste_conformite.json").read_text(encoding="utf-8"))
    produced = manifest["assets"]["out_indicators"]["last_materialization"]
    assert produced["materialized"] and produced["run_id"] == result.run_id
    assert manifest["audit"]["passed"] is True and manifest["audit"]["run_id"] == result.run_id
    assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
    assert manifest["assets"]["raw_bca"]["last_materialization"] == {"materialized": False}  # not on this instance


def test_make_ui_needs_the_connection_variables(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PG_")}
    result = subprocess.run(["make", "-s", "ui-server"], cwd=PACKAGE_ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and "DAGSTER_PG_HOST is not set" in result.stderr


@pytest.mark.postgres
@pytest.mark.parametrize("instance_storage", ["postgres"], indirect=True)
def test_make_ui_server_runs_the_ui_and_daemon_on_postgresql(instance_storage, pg_cluster, tmp_path):
    """`make ui-server` against an existing PostgreSQL given by DAGSTER_PG_*: the UI loads the
    project, the daemon beats in the database's tables, and the password is in no output."""
    import json
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, UI_PORT=str(port))
    server_home = PACKAGE_ROOT / ".dagster_home" / "server"
    log = open(tmp_path / "ui-server.log", "w")
    process = subprocess.Popen(["make", "-s", "ui-server"], cwd=PACKAGE_ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    database = os.environ["DAGSTER_PG_DB"]
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, (tmp_path / "ui-server.log").read_text()
            assert time.monotonic() < deadline, "make ui-server did not come up"
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql", headers={"Content-Type": "application/json"},
                    data=json.dumps({"query": "{ workspaceOrError { ... on Workspace { locationEntries "
                                              "{ locationOrLoadError { __typename } } } } }"}).encode())
                with urllib.request.urlopen(request, timeout=10) as response:
                    entries = json.loads(response.read())["data"]["workspaceOrError"]["locationEntries"]
                beats = pg_cluster.sql("SELECT count(*) FROM daemon_heartbeats", database=database)[0][0]
                if entries and entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation" and beats:
                    break
            except Exception:  # noqa: BLE001 - not up yet (connection refused, tables not created)
                pass
            time.sleep(2)
    finally:
        if process.poll() is None:
            stop_group(process)
        log.close()
    output = (tmp_path / "ui-server.log").read_text()
    assert pg_cluster.password not in output
    config = (server_home / "dagster.yaml").read_text(encoding="utf-8")
    assert pg_cluster.password not in config and "DAGSTER_PG_PASSWORD" in config


def test_destroy_launches_the_destruction_job_and_prints_its_refusal(project, instance, capsys):
    """`make destroy STUDY_ID=...` is one run of the job `destruction` of the definitions; a
    refusal (the study still open) is a clear message, not a traceback."""
    from pipeline.__main__ import main
    from pipeline.study import load_study

    study_id = load_study().study_id
    assert main(["destroy", "--study-id", study_id]) == 1
    err = capsys.readouterr().err
    assert f"FAILED: destruction of study {study_id} (run " in err
    assert "destruction refused" in err and "status is 'open'" in err and "Traceback" not in err
    (run,) = instance.get_run_records()
    assert run.dagster_run.job_name == "destruction"
    assert run.dagster_run.status == dg.DagsterRunStatus.FAILURE
