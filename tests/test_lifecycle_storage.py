"""The destruction's adapter to Dagster's storage (pipeline/lifecycle/dagster_storage.py):
what it relies on beyond Dagster's public API is still there (a Dagster upgrade that changes
it fails here, not in a destruction), and nothing else in the package reaches into Dagster."""

from __future__ import annotations

import ast
import json
import os
import uuid
from pathlib import Path

import dagster as dg
import pytest

from pipeline.lifecycle import dagster_storage
from pipeline.lifecycle.dagster_storage import RELIES_ON, DagsterStorage
from pipeline.settings import PACKAGE_ROOT
from tests.helpers import materialize

PACKAGE = PACKAGE_ROOT / "pipeline" / "lifecycle"


def _classes() -> dict[str, type]:
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
    from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
    from dagster_postgres.event_log.event_log import PostgresEventLogStorage

    return {"SqlEventLogStorageTable": dagster_storage.SqlEventLogStorageTable,
            "AssetCheckExecutionsTable": dagster_storage.AssetCheckExecutionsTable,
            "SqliteEventLogStorage": SqliteEventLogStorage, "PostgresEventLogStorage": PostgresEventLogStorage,
            "LocalComputeLogManager": LocalComputeLogManager}


@pytest.mark.parametrize("what", sorted(RELIES_ON))
def test_what_the_adapter_relies_on_is_still_in_dagster(what):
    name, needed = RELIES_ON[what]
    if name == "RUNLESS_RUN_ID":
        assert dagster_storage.RUNLESS_RUN_ID == ""
        return
    target = _classes()[name]
    for attribute in needed:
        if name.endswith("Table"):
            assert attribute in target.c, f"{name} has no column {attribute}"
        elif attribute.startswith("_") or attribute == "postgres_url":
            import inspect

            assert f"self.{attribute} =" in inspect.getsource(target.__init__), f"{name}.{attribute}"
        else:
            assert callable(getattr(target, attribute, None)), f"{name}.{attribute}"


def test_only_the_adapter_imports_dagster_private_modules_and_no_module_sleeps():
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        private = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
                   and n.module.startswith("dagster._")]
        private += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
                    if a.name.startswith("dagster._")]
        if path.name != "dagster_storage.py":
            assert not private, (path.name, private)
        assert "sleep(" not in path.read_text(encoding="utf-8"), path.name  # no test hook in production code
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 600, path.name


def test_the_ingest_gate_loads_alone():
    import subprocess
    import sys

    code = ("import sys; from pipeline.lifecycle import assert_ingest_allowed, ingest_refusal; "
            "print(sorted(m for m in sys.modules if m.startswith('pipeline.lifecycle')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['pipeline.lifecycle', 'pipeline.lifecycle.gate']"


def test_the_adapter_purges_a_run_and_runless_events_on_both_storages(sample_project, instance, request):
    """The calls the destruction makes, on a real instance: a run's events and captured output
    gone, check results and runless events of the asset gone, history wiped, storage compacted."""
    assert materialize(["raw_places_a_creer", "stg_places_a_creer"], "2020", instance).success
    key = dg.AssetKey("raw_places_a_creer")
    instance.report_runless_asset_event(dg.AssetObservation(key, metadata={"note": "runless"}))
    home = Path(instance.root_directory)
    storage = DagsterStorage(instance, home)
    runs = storage.runs_touching({key}, set())
    assert len(runs) == 1 and runs[0]["assets"] == ["raw_places_a_creer"]
    run_id = runs[0]["run_id"]
    files = storage.run_files(run_id)
    assert files and all(p.exists() for p in files)
    assert storage.materialization_summary(key)["partitions"] == ["2020"]

    storage.delete_run(run_id)
    storage.delete_check_executions([run_id])
    assert storage.delete_runless_events({key}) == 1
    assert storage.wipe_asset(key)
    assert instance.get_run_by_id(run_id) is None and not any(p.exists() for p in files)
    assert not instance.fetch_materializations(key, limit=1).records
    assert not instance.fetch_observations(key, limit=1).records
    compacted = storage.compact(str)
    assert compacted["storage"] == storage.kind
    if storage.kind == "postgres":
        assert "event_logs" in compacted["vacuum_full"] and compacted["wal_switches"] >= 1 and not compacted["refused"]
        cluster = request.getfixturevalue("pg_cluster")  # the server's own folder, found through SQL
        assert storage.data_directory().resolve() == cluster.data_dir.resolve()
    else:
        assert any(p.endswith("index.db") for p in compacted["sqlite_vacuumed"])


@pytest.mark.postgres
@pytest.mark.parametrize("instance_storage", ["postgres"], indirect=True)
def test_the_database_scan_finds_a_value_in_text_json_and_binary_columns(instance, pg_cluster):
    from pipeline.lifecycle.scanner import Sentinel

    database = os.environ["DAGSTER_PG_DB"]
    secret = "Écluse-" + uuid.uuid4().hex[:8]
    pg_cluster.sql("CREATE TABLE extra (note text, doc jsonb, blob bytea)", database=database)
    pg_cluster.sql("INSERT INTO extra VALUES (%s, %s, %s), ('rien', '{}', NULL)",
                   (f"vu {secret}", json.dumps({"k": secret}), f"..{secret}..".encode()), database=database)
    storage = DagsterStorage(instance, Path(instance.root_directory))
    scope, hits = storage.scan_database([Sentinel(secret, "fourni"), Sentinel("absent-" + secret, "dérivé")])
    assert {h["path"]: h["count"] for h in hits} == {
        "PostgreSQL :: extra.note": 1, "PostgreSQL :: extra.doc": 1, "PostgreSQL :: extra.blob": 1}
    assert all(h["origin"] == "fourni" for h in hits) and secret not in json.dumps(hits, ensure_ascii=False)
    assert scope["tables"] >= 20  # Dagster's own tables and this one


def test_the_code_version_of_the_lifecycle_follows_its_package():
    from pipeline.lineage import STAGE_FILES

    for group, names in STAGE_FILES.items():  # a moved file would silently leave its stage's version
        assert all((PACKAGE_ROOT / name).exists() for name in names), group
    assert "pipeline/lifecycle" in STAGE_FILES["lifecycle"]
