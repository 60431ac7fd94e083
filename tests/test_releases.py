"""The publication history: a release is an explicit, immutable act (pipeline/releases.py,
the op job `release`, `make release`).

Pure functions and the warehouse I/O on tiny tables first; then, on the sample warehouse
(`built_project`), through the job as `make release` launches it: R1, a refused repeat, R2
after a change with R1 untouched, refusals (closed study, a table the audit did not clear),
the CLI, the manifest, and the destruction keeping the published history only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import dagster as dg
import duckdb
import pandas as pd
import pytest

from pipeline.fingerprint import table_digest, table_fingerprint
from pipeline.releases import (
    RELEASE_INDICATORS_TABLE,
    RELEASE_VALUES_TABLE,
    RELEASE_ZONES_TABLE,
    RELEASES_TABLE,
    ReleaseError,
    history_problems,
    load_history,
    next_release_id,
    publication_state,
    record_release,
    referential_sha256,
    release_for,
    reports_inventory,
    zone_tree,
)
from pipeline.settings import PACKAGE_ROOT
from pipeline.study import Study, load_study, set_study_status
from pipeline.tables import column_names, described_schema
from pipeline.territory import load_territory
from tests.helpers import failure_message, query

POLICY = SimpleNamespace(version="test-1", sha256="a" * 64, threshold=5, rate_decimals=1)
PUBLISHED_COLUMNS = column_names("published.indicators")


# ---- pure functions --------------------------------------------------------------------------


def test_release_ids_follow_in_order():
    assert next_release_id([]) == "R1"
    assert next_release_id(["R1", "R2"]) == "R3"
    assert next_release_id(["R9", "R10", "R2"]) == "R11"  # by number, not by text
    with pytest.raises(ReleaseError, match="not a release id"):
        next_release_id(["R1", "draft"])


def test_the_referential_hash_ignores_row_order_and_sees_any_change():
    zones = pd.DataFrame({"level": ["epci", "rpe", "commune"], "zone_code": ["200072", "RPE-1", "62119"],
                          "zone_name": ["Agglo", "Relais 1", "Béthune"], "parent_code": [None, "200072", "RPE-1"]})
    digest = referential_sha256(zones)
    assert len(digest) == 64
    assert referential_sha256(zones.iloc[[2, 0, 1]]) == digest
    renamed = zones.assign(zone_name=["Agglo", "Relais 1", "Bethune"])
    assert referential_sha256(renamed) != digest
    moved = zones.assign(parent_code=[None, "200072", "RPE-2"])
    assert referential_sha256(moved) != digest


def test_the_reports_inventory_lists_every_report_file_with_its_hash(tmp_path):
    (tmp_path / "rapport.html").write_text("<html></html>")
    (tmp_path / "manifeste_conformite.json").write_text("{}")
    (tmp_path / "README.md").write_text("what this folder holds")
    (tmp_path / ".hidden").write_text("x")
    (tmp_path / "pv").mkdir()
    (tmp_path / "pv" / "certificat.json").write_text("{}")
    listed = reports_inventory(tmp_path)
    assert [f["file"] for f in listed] == ["manifeste_conformite.json", "pv/certificat.json", "rapport.html"]
    assert all(len(f["sha256"]) == 64 for f in listed)
    assert reports_inventory(tmp_path / "absent") == []


def test_release_for_names_the_latest_release_of_a_fingerprint():
    summaries = [{"release_id": "R1", "table_fingerprint": "f1"}, {"release_id": "R2", "table_fingerprint": "f2"},
                 {"release_id": "R3", "table_fingerprint": "f1"}]
    assert release_for("f1", summaries) == "R3" and release_for("f2", summaries) == "R2"
    assert release_for("f9", summaries) is None and release_for(None, summaries) is None


# ---- the warehouse I/O on tiny tables ----------------------------------------------------------


def study(status: str = "open") -> Study:
    return Study(study_id="etude-test", title="", status=status, published_on=None, responsible="")


def tiny_warehouse(territory) -> duckdb.DuckDBPyConnection:
    """published.indicators, its candidate and confidential.indicators for three zones of the
    territory and two IRIS of a commune."""
    commune = territory.communes.iloc[0]
    rpe, epci = commune["code_rpe"], territory.epci_of_rpe(commune["code_rpe"])
    code = commune["code_commune"]
    rows = [("epci", epci, "Agglo", None), ("rpe", rpe, "Relais", epci), ("commune", code, commune["nom_commune"], rpe),
            ("iris", code + "0101", "Centre", code), ("iris", code + "0102", "Gare", code)]
    published = pd.DataFrame(
        [(lvl, code, name, parent, "nb_am", 2020, v, s, "etude-test")
         for (lvl, code, name, parent), v, s in zip(rows, [120.0, None, 17.0, None, None],
                                                    ["published", "masked", "published", "masked", "masked"])],
        columns=PUBLISHED_COLUMNS,
    ).astype({"year": "int32"})
    truth = published[["level", "zone_code", "zone_name", "parent_code", "indicator", "year"]].assign(
        value=[120.0, 103.0, 17.0, 9.0, 8.0], numerator=None, denominator=None)
    con = duckdb.connect()
    con.execute("CREATE SCHEMA published; CREATE SCHEMA confidential")
    con.register("p", published)
    con.register("t", truth)
    con.execute("CREATE TABLE published.indicators AS SELECT * FROM p")
    con.execute("CREATE TABLE confidential.published_candidate AS SELECT * FROM p")
    con.execute("CREATE TABLE confidential.indicators AS SELECT * REPLACE (CAST(numerator AS DOUBLE) AS numerator, "
                "CAST(denominator AS DOUBLE) AS denominator) FROM t")
    con.unregister("p")
    con.unregister("t")
    return con


def release(con, territory, tmp_path, status="open", **kw):
    return record_release(con, study=study(status), policy=POLICY, territory=territory, operator=kw.get("operator", ""),
                          note=kw.get("note", ""), reports_dir=tmp_path)


def test_a_release_on_tiny_tables_and_its_refusals(project, tmp_path):
    territory = load_territory()
    con = tiny_warehouse(territory)
    assert load_history(con) == [] and publication_state(con) == {"releases": [], "current_release": None}
    tmp_path = project / "reports"
    (tmp_path / "rapport.html").write_text("<html></html>")

    r1 = release(con, territory, tmp_path, operator="Service PE", note="comité du 3 mars")
    assert r1.release_id == "R1" and r1.rows == 5 and r1.masked == 3
    assert r1.table_fingerprint == table_fingerprint(con, "published.indicators")
    assert r1.released_at.tzinfo == dt.timezone.utc
    assert (r1.policy_version, r1.threshold, r1.rate_decimals) == ("test-1", 5, 1)
    assert [f["file"] for f in r1.reports] == ["rapport.html"] and r1.operator == "Service PE"
    assert list(r1.published.columns) == PUBLISHED_COLUMNS and len(r1.published) == 5
    assert list(r1.zones.columns) == ["level", "zone_code", "zone_name", "parent_code"]
    # the zone tree the masking uses: the territory's, and the IRIS the table holds
    assert len(r1.zones) == len(territory.zones()) + 2 and r1.referential_sha256 == referential_sha256(r1.zones)
    commune = territory.communes.iloc[0]["code_commune"]
    assert r1.zones[r1.zones["level"] == "iris"]["parent_code"].tolist() == [commune, commune]
    assert sorted(r1.truth["value"]) == [8.0, 9.0, 17.0, 103.0, 120.0]  # the hidden figures kept, confidentially
    assert list(r1.truth.columns) == ["level", "zone_code", "indicator", "year", "value", "numerator", "denominator"]
    # every table written is the one declared in config/tables.yaml
    for table in (RELEASES_TABLE, RELEASE_INDICATORS_TABLE, RELEASE_ZONES_TABLE, RELEASE_VALUES_TABLE):
        assert [c.name for c in described_schema(con, table).columns] == column_names(table)
    assert publication_state(con)["current_release"] == "R1"

    with pytest.raises(ReleaseError, match="nothing new to release.*release R1's") as refused:
        release(con, territory, tmp_path)
    assert "Relais" not in str(refused.value) and "120" not in str(refused.value)

    # published changed without the audit's candidate: refused, nothing written
    con.execute("UPDATE published.indicators SET value = 121 WHERE level = 'epci'")
    with pytest.raises(ReleaseError, match="run the refresh first") as refused:
        release(con, territory, tmp_path)
    assert "121" not in str(refused.value)
    assert publication_state(con)["current_release"] is None  # a draft
    # the refresh brings the candidate (the masking's, cleared by the audit): R2
    con.execute("UPDATE confidential.published_candidate SET value = 121 WHERE level = 'epci'")
    con.execute("UPDATE confidential.indicators SET value = 121 WHERE level = 'epci'")
    r2 = release(con, territory, tmp_path)
    assert r2.release_id == "R2" and r2.table_fingerprint != r1.table_fingerprint
    history = load_history(con)
    assert [r.release_id for r in history] == ["R1", "R2"]
    assert history[0].published.equals(r1.published) and history[0].truth.equals(r1.truth)
    assert 120.0 in history[0].published["value"].tolist() and 121.0 in history[1].published["value"].tolist()
    assert history_problems(con) == []

    with pytest.raises(ReleaseError, match="is closed"):
        release(con, territory, tmp_path, status="closed")

    # a released row altered behind the pipeline's back: the history says so and refuses
    con.execute("UPDATE published.release_indicators SET value = 1 WHERE release_id = 'R1' AND level = 'epci'")
    assert any("R1" in p for p in history_problems(con))
    con.execute("UPDATE published.indicators SET value = 122 WHERE level = 'epci'")
    con.execute("UPDATE confidential.published_candidate SET value = 122 WHERE level = 'epci'")
    with pytest.raises(ReleaseError, match="history was altered.*release R1"):
        release(con, territory, tmp_path)
    assert len(load_history(con)) == 2

    con.execute("DROP TABLE published.indicators")
    with pytest.raises(ReleaseError, match="published.indicators does not exist"):
        release(con, territory, tmp_path)


def test_a_refused_release_writes_nothing(project, tmp_path):
    territory = load_territory()
    con = tiny_warehouse(territory)
    con.execute("DROP TABLE confidential.indicators")
    with pytest.raises(ReleaseError, match="confidential.indicators does not exist"):
        release(con, territory, tmp_path)
    assert load_history(con) == []
    assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'release%'").fetchone()[0]


# ---- through the job, on the sample warehouse ----------------------------------------------------


def persistent_instance() -> dg.DagsterInstance:
    from tests.test_lifecycle import persistent_instance as configured

    return configured()


def launch(instance, **kw):
    from pipeline.launch import launch_release

    return launch_release(instance, **kw)


def change_one_published_row(project) -> None:
    """What a refresh after a correction does: published.indicators and the candidate the audit
    cleared change together."""
    con = duckdb.connect(str(project / "warehouse" / "warehouse.duckdb"))
    try:
        for table in ("published.indicators", "confidential.published_candidate"):
            con.execute(f"UPDATE {table} SET value = value + 1 WHERE level = 'epci' AND status = 'published' "
                        "AND year = (SELECT max(year) FROM published.indicators WHERE level = 'epci' "
                        "AND status = 'published')")
    finally:
        con.close()


def manifest(project) -> dict:
    return json.loads((project / "reports" / "manifeste_conformite.json").read_text(encoding="utf-8"))


def test_release_job_r1_refused_repeat_r2_and_refusals(built_project, capsys):
    from pipeline.__main__ import main

    instance = persistent_instance()
    db = built_project / "warehouse" / "warehouse.duckdb"
    (published_rows,) = query(built_project, "SELECT count(*) FROM published.indicators")[0]
    (built_project / "reports" / "rapport_petite_enfance.html").write_text("<html>rapport</html>", encoding="utf-8")
    before_reports = reports_inventory(built_project / "reports")

    # R1, through the CLI's code (in process): one line
    assert main(["release", "--operator", "Service Petite Enfance", "--note", "comité de pilotage"]) == 0
    line = capsys.readouterr().out.strip()
    con = duckdb.connect(str(db), read_only=True)
    try:
        fingerprint = table_fingerprint(con, "published.indicators")
        (r1,) = load_history(con)
        zones_now = zone_tree(con.execute("SELECT * FROM published.indicators").df(), load_territory())
        (truth_rows,) = con.execute("SELECT count(*) FROM confidential.indicators").fetchone()
    finally:
        con.close()
    assert line == f"released R1: {published_rows} rows, fingerprint {fingerprint[:12]}"
    assert r1.release_id == "R1" and r1.rows == published_rows == len(r1.published)
    assert r1.table_fingerprint == fingerprint and r1.operator == "Service Petite Enfance"
    assert r1.zones.equals(zones_now)
    assert len(r1.truth) == truth_rows
    assert list(r1.reports) == before_reports and any(f["file"].endswith(".html") for f in r1.reports)
    # the manifest was written again: it names the release
    m = manifest(built_project)
    assert [r["release_id"] for r in m["publications"]["releases"]] == ["R1"]
    assert m["published_table"]["release"] == "R1"
    assert m["publications"]["releases"][0]["table_fingerprint"] == fingerprint
    page = (built_project / "reports" / "manifeste_conformite.md").read_text(encoding="utf-8")
    assert "## Publications (releases)" in page and "publication **R1**" in page and fingerprint in page
    tables = {t["table"]: t["at_study_end"] for t in m["tables_on_disk"]}
    assert tables["published.releases"] == "keep" and tables["confidential.release_values"] == "destroy"

    # nothing changed: refused, naming the release that holds it
    refused = launch(instance)
    assert not refused.success
    message = failure_message(refused.result)
    assert "release refused: nothing new to release" in message and "release R1's" in message

    # a changed published table (and its cleared candidate): R2, R1's rows unchanged
    change_one_published_row(built_project)
    done = launch(instance, operator="test")
    assert done.success, failure_message(done.result)
    output = done.result.output_for_node("record_release")
    assert output["release_id"] == "R2"
    con = duckdb.connect(str(db), read_only=True)
    try:
        history = load_history(con)
        r1_rows = table_digest(con, "(SELECT " + ", ".join(column_names("published.indicators"))
                               + " FROM published.release_indicators WHERE release_id = 'R1')")
    finally:
        con.close()
    assert [r.release_id for r in history] == ["R1", "R2"]
    assert history[0].published.equals(r1.published) and r1_rows == (r1.rows, r1.table_fingerprint)
    assert history[1].table_fingerprint == output["table_fingerprint"] != r1.table_fingerprint
    assert [r["release_id"] for r in manifest(built_project)["publications"]["releases"]] == ["R1", "R2"]
    # the run's metadata holds ids, counts, versions and hashes only
    (event,) = [e for e in done.result.events_for_node("record_release") if e.is_successful_output]
    meta = {k: v.value for k, v in event.step_output_data.metadata.items()}
    assert meta["release_id"] == "R2" and meta["rows"] == history[1].rows
    assert set(meta) == {"release_id", "rows", "masked", "table_fingerprint", "referential_sha256", "study_id",
                         "zones", "truth_rows", "reports", "policy_version", "policy_sha256"}

    # the published table no longer the audit's candidate: refused
    con = duckdb.connect(str(db))
    try:
        con.execute("UPDATE published.indicators SET status = 'masked', value = NULL WHERE level = 'epci' "
                    "AND status = 'published' AND year = (SELECT min(year) FROM published.indicators)")
    finally:
        con.close()
    refused = launch(instance)
    assert "run the refresh first" in failure_message(refused.result)

    # a closed study: refused
    set_study_status("closed", dt.date.today())
    assert "is closed" in failure_message(launch(instance).result)
    assert query(built_project, "SELECT count(*) FROM published.releases")[0][0] == 2


@pytest.mark.integration
def test_the_cli_prints_a_refusal_without_a_traceback(project):
    set_study_status("closed", dt.date.today())
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
    done = subprocess.run([sys.executable, "-m", "pipeline", "release", "--operator", "test"], cwd=PACKAGE_ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "release refused:" in done.stderr and "is closed" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout and done.stdout.strip() == ""


def test_the_destruction_keeps_the_published_history_and_drops_the_truth(built_project):
    from pipeline import lifecycle
    from tests.test_lifecycle import close_study, destroy, published_snapshot

    instance = persistent_instance()
    assert launch(instance).success
    history_tables = {"releases", "release_indicators", "release_zones"}
    published = {k: v for k, v in published_snapshot(built_project).items() if k in history_tables}
    assert set(published) == history_tables
    assert query(built_project, f"SELECT count(*) FROM {RELEASE_VALUES_TABLE}")[0][0] > 0

    close_study()
    result = destroy(instance, load_study().study_id)
    assert result.success, failure_message(result)

    assert {k: v for k, v in published_snapshot(built_project).items() if k in history_tables} == published
    assert not query(built_project, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'confidential'")[0][0]
    con = duckdb.connect(str(built_project / "warehouse" / "warehouse.duckdb"), read_only=True)
    try:
        (r1,) = load_history(con)
        assert history_problems(con) == []
    finally:
        con.close()
    assert r1.truth.empty and list(r1.truth.columns)[:2] == ["level", "zone_code"] and len(r1.published) == r1.rows
    cert = json.loads(lifecycle.certificate_paths(load_study().study_id)[1].read_text(encoding="utf-8"))
    kept = {t["table"] for t in cert["conserve"]["tables"]}
    assert {"published.releases", "published.release_indicators", "published.release_zones"} <= kept
    assert RELEASE_VALUES_TABLE in {t["table"] for t in cert["detruit"]["tables"]}
    # the reduced ledger and the manifest still work; a release after the closing is refused
    assert query(built_project, "SELECT count(*) FROM lineage.ingest_ledger")[0][0] > 0
    from tests.helpers import materialize

    assert materialize(["out_manifeste_conformite"], None, instance).success
    m = manifest(built_project)
    assert [r["release_id"] for r in m["publications"]["releases"]] == ["R1"]
    assert m["published_table"]["release"] == "R1"
    assert "is closed" in failure_message(launch(instance).result)
