"""The Dagster UI as a data engineer uses it: the webserver on a loopback port with the
project's workspace, headless Chromium (Debian's, through Selenium) on the asset graph,
a materialization launched through the UI's GraphQL API, and a screenshot.

Without Chromium the test fails (CI installs it in .ci/run): it is never skipped.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pipeline.settings import PACKAGE_ROOT
from tests.helpers import stop_group
from tests.test_reports_browser import _driver

pytestmark = pytest.mark.integration

LOCATION = "cabbalr_caf"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    assert "errors" not in payload, payload
    return payload["data"]


@pytest.fixture
def webserver(sample_project, instance_storage, tmp_path):
    """dagster-webserver on the project's workspace and instance (SQLite, or PostgreSQL whose
    DAGSTER_PG_* variables the server inherits), runs launched at once (no daemon)."""
    home = Path(os.environ["DAGSTER_HOME"])
    config = yaml.safe_load((home / "dagster.yaml").read_text(encoding="utf-8"))
    config["run_coordinator"] = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions("annees_places_a_creer", ["2020"])
    port = _free_port()
    log = open(tmp_path / "webserver.log", "w")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-webserver")), "-w", str(PACKAGE_ROOT / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=PACKAGE_ROOT, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(), start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                data = _graphql(port, "{ workspaceOrError { __typename ... on Workspace { locationEntries "
                                      "{ name locationOrLoadError { __typename } } } } }")
                entries = data["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation":
                    break
            except OSError:
                pass
            assert process.poll() is None, (tmp_path / "webserver.log").read_text()
            assert time.monotonic() < deadline, "the webserver did not load the code location"
            time.sleep(1)
        yield port
    finally:
        stop_group(process, timeout=20)
        log.close()


def test_asset_graph_lineage_and_a_materialization_from_the_ui(webserver, sample_project, tmp_path):
    port = webserver
    from pipeline.definitions import defs

    every_asset = sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())
    listed = _graphql(port, "{ assetNodes { assetKey { path } groupName dependencyKeys { path } } }")["assetNodes"]
    assert sorted("/".join(n["assetKey"]["path"]) for n in listed) == every_asset
    upstream = {"/".join(n["assetKey"]["path"]): ["/".join(d["path"]) for d in n["dependencyKeys"]] for n in listed}

    def ancestors(key: str) -> set[str]:
        out, todo = set(), [key]
        while todo:
            for dep in upstream[todo.pop()]:
                if dep not in out:
                    out.add(dep)
                    todo.append(dep)
        return out

    reports = [k for k in every_asset if k.startswith("out_rapport")]
    assert reports and all("raw_bca" in ancestors(r) for r in reports)  # lineage from raw files to reports

    driver = _driver()
    try:
        driver.set_window_size(1600, 2400)  # the catalog renders only the rows in view
        def wait_for(names: list[str], shot: str) -> None:
            deadline = time.monotonic() + 60
            while not all(name in driver.page_source for name in names):
                for button in driver.find_elements("xpath", "//button[normalize-space()='Skip']"):
                    button.click()  # the first-visit newsletter dialog
                if time.monotonic() > deadline:
                    driver.save_screenshot(str(tmp_path / f"{shot}_timeout.png"))
                    pytest.fail(f"the page did not show {names}; see {tmp_path}")
                time.sleep(1)
            time.sleep(1)
            driver.save_screenshot(str(tmp_path / f"{shot}.png"))

        driver.get(f"http://127.0.0.1:{port}/assets")  # the catalog: every asset with its group
        wait_for(every_asset, "catalog")
        # the lineage of a report, upstream to the raw files
        driver.get(f"http://127.0.0.1:{port}/assets/{reports[0]}?view=lineage&lineageScope=upstream&lineageDepth=8")
        wait_for(["raw_bca", "stg_bca", "core_indicators", "out_indicators", reports[0]], "asset_graph")
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
        assert not severe, severe

        launched = _graphql(
            port,
            """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
                 __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
            {"params": {
                "selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                             "jobName": "__ASSET_JOB",
                             "assetSelection": [{"path": ["raw_places_a_creer"]}, {"path": ["stg_places_a_creer"]}]},
                "runConfigData": {},
                "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "2020"}]},
            }},
        )["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        deadline = time.monotonic() + 180
        while True:
            status = _graphql(port, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
                              {"id": run_id})["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            assert time.monotonic() < deadline, f"run still {status}"
            time.sleep(1)
        assert status == "SUCCESS"
        # the run is in the instance's storage the webserver was given (SQLite or PostgreSQL)
        instance = dg.DagsterInstance.get()
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        assert instance.fetch_materializations(dg.AssetKey("stg_places_a_creer"), limit=1).records
        instance.dispose()

        driver.get(f"http://127.0.0.1:{port}/runs/{run_id}")
        deadline = time.monotonic() + 60
        while "stg_places_a_creer" not in driver.page_source:
            assert time.monotonic() < deadline
            time.sleep(1)
        driver.save_screenshot(str(tmp_path / "run.png"))
    finally:
        driver.quit()
    assert (tmp_path / "asset_graph.png").stat().st_size > 10_000
