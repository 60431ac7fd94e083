"""Shared fixtures: an isolated copy of the project (config, raw, warehouse, reports,
DAGSTER_HOME) per test, the generated sample files, made once per session, and the Dagster
instance on SQLite or on a throw-away PostgreSQL cluster (`pytest -m postgres`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, settings

from pipeline.settings import PACKAGE_ROOT

# Property tests explore a fixed sequence of cases, the same with or without CI set: a
# fresh clone's `make test` passes run after run. A failure found gets pinned as an
# @example beside its test.
settings.register_profile(
    "project", derandomize=True, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("project")

SEED = 2022

# A test is an integration test (marker `integration`) when it builds the sample's files or
# runs the Dagster jobs: through these fixtures, or by its module's `pytestmark`. `make
# test-unit` leaves them out, with the browser and PostgreSQL tests; `make test` runs all.
INTEGRATION_FIXTURES = frozenset({"sample_dir", "sample_project", "built_warehouse", "built_project",
                                  "instance_storage", "instance", "pg_cluster"})


# The longest files (minutes each on 2 cores), started first: `make test` hands whole files to
# its workers in collection order, and a long file handed out last would run alone at the end.
LONG_FILES = ("test_releases_actions.py", "test_releases_data.py", "test_attack.py", "test_scale.py",
              "test_releases_pipeline.py", "test_ui_browser.py", "test_operations.py")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
    rank = {name: k for k, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's own order kept


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """The sample raw files, generated once (read-only: copy before changing)."""
    from pipeline.sample import generate

    out = tmp_path_factory.mktemp("sample_raw")
    generate(out, seed=SEED)
    return out


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """An empty project folder with the repository's config; paths point at it."""
    root = tmp_path / "project"
    shutil.copytree(PACKAGE_ROOT / "config", root / "config")
    for folder in ("raw", "warehouse", "reports"):
        (root / folder).mkdir(parents=True)
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("CAF_PROJECT_DIR", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for var in ("CAF_RAW_DIR", "CAF_WAREHOUSE", "CAF_REPORTS_DIR", "CAF_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    return root


@pytest.fixture
def sample_project(project, sample_dir) -> Path:
    """The isolated project with the sample files in raw/."""
    for path in sample_dir.iterdir():
        shutil.copy2(path, project / "raw" / path.name)
    return project


@pytest.fixture(scope="session")
def built_warehouse(tmp_path_factory, sample_dir) -> Path:
    """A warehouse built once from the sample by every asset (ingest to published table)."""
    from tests.helpers import materialize_all

    root = tmp_path_factory.mktemp("built")
    shutil.copytree(PACKAGE_ROOT / "config", root / "config")
    shutil.copytree(sample_dir, root / "raw")
    for folder in ("warehouse", "reports", "dagster_home"):
        (root / folder).mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAF_PROJECT_DIR", str(root))
        mp.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        for var in ("CAF_RAW_DIR", "CAF_WAREHOUSE", "CAF_REPORTS_DIR", "CAF_CONFIG_DIR"):
            mp.delenv(var, raising=False)
        failed = materialize_all()
        assert not failed, failed
    return root / "warehouse" / "warehouse.duckdb"


@pytest.fixture
def built_project(sample_project, built_warehouse) -> Path:
    """The isolated project with the sample in raw/ and the warehouse built from it."""
    shutil.copy2(built_warehouse, sample_project / "warehouse" / "warehouse.duckdb")
    return sample_project


# ---- the Dagster instance on SQLite or on a throw-away PostgreSQL cluster ----------------------

STORAGES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory):
    """A PostgreSQL cluster of the tests' own (initdb in a temporary folder, a free port on
    127.0.0.1, password authentication), stopped and removed at the end of the session.

    Without the server binaries the PostgreSQL tests are skipped on a developer's machine
    but fail under CI (`CI` set: .ci/run installs Debian's postgresql)."""
    from tests.pg_cluster import Cluster, server_bindir

    bindir = server_bindir()
    if bindir is None:
        message = "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run installs them)")
        pytest.skip(message)
    cluster = Cluster(bindir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=STORAGES)
def instance_storage(request, project) -> str:
    """The test's DAGSTER_HOME configured like the project's instance (`.dagster_home/dagster.yaml`),
    on SQLite or, for `postgres`, with the storage of `deploy/dagster.postgres.yaml` pointed by the
    DAGSTER_PG_* variables at a fresh database of the test cluster (the password stays in the
    environment, never in a file)."""
    home = Path(os.environ["DAGSTER_HOME"])
    config = yaml.safe_load((PACKAGE_ROOT / ".dagster_home" / "dagster.yaml").read_text(encoding="utf-8"))
    if request.param == "postgres":
        cluster = request.getfixturevalue("pg_cluster")
        database = cluster.create_database()
        request.addfinalizer(lambda: cluster.drop_database(database))
        monkeypatch = request.getfixturevalue("monkeypatch")
        for name, value in cluster.environment(database).items():
            monkeypatch.setenv(name, value)
        deploy = yaml.safe_load((PACKAGE_ROOT / "deploy" / "dagster.postgres.yaml").read_text(encoding="utf-8"))
        config["storage"] = deploy["storage"]
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    if request.param == "postgres":
        # as `make ui-server` does: the pool's row exists before two runs race to create it (else
        # one of them fails on PostgreSQL's unique key of concurrency_limits)
        import dagster as dg

        with dg.DagsterInstance.get() as instance:
            instance.event_log_storage.set_concurrency_slots("warehouse", 1)
    return request.param


@pytest.fixture
def instance(instance_storage):
    """The persistent instance of the test's DAGSTER_HOME, on the storage of `instance_storage`."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    expected = "PostgresEventLogStorage" if instance_storage == "postgres" else "SqliteEventLogStorage"
    assert type(instance.event_log_storage).__name__ == expected
    yield instance
    instance.dispose()
