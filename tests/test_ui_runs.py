"""Runs launched from the UI, through its GraphQL API (what its buttons call), with the daemon
running as `make ui` runs it: "Materialize all" selects no destruction, and a run cancelled
after its process died does not keep the pool slot of `warehouse` (every later run queued
behind it for an hour and a half when it did)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from pipeline.settings import PACKAGE_ROOT
from tests.helpers import stop_group
from tests.test_ui_browser import LOCATION, _graphql, webserver  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration

REPOSITORY = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}
POOL = "warehouse"


def _launch(port: int, job: str, assets: list[str] | None = None, partition: str | None = None) -> str:
    selector = {**REPOSITORY, "jobName": job}
    if assets:
        selector["assetSelection"] = [{"path": [a]} for a in assets]
    tags = [{"key": "dagster/partition", "value": partition}] if partition else []
    launched = _slow_graphql(
        port,
        """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
             __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
             ... on RunConfigValidationInvalid { errors { message } } } }""",
        {"params": {"selector": selector, "runConfigData": {}, "executionMetadata": {"tags": tags}}}, 300,
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def _slow_graphql(port: int, query: str, variables: dict, timeout: float) -> dict:
    """A GraphQL call that may take long (a termination waits on the dead run's code server)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"query": query, "variables": variables}).encode())
    with urllib.request.urlopen(request, timeout=timeout) as response:
        payload = json.loads(response.read())
    assert "errors" not in payload, payload
    return payload["data"]


def _status(port: int, run_id: str) -> str:
    return _graphql(port, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
                    {"id": run_id})["runOrError"]["status"]


def _wait(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return value


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc: no psutil here)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        message = entry.dagster_event.message or ""
        if message.startswith("Started process for run (pid: "):
            return int(message.split("pid: ")[1].split(")")[0])
    return None


def _holders(instance: dg.DagsterInstance) -> set[str]:
    info = instance.event_log_storage.get_concurrency_info(POOL)
    return {c.run_id for c in info.claimed_slots} | {s.run_id for s in info.pending_steps}


def _empty_config_check(port: int, job: str) -> str:
    """What the UI's launchpad says of a launch of `job` with an empty config."""
    return _graphql(
        port,
        """query($selector: PipelineSelector!) { runConfigSchemaOrError(selector: $selector) {
             __typename ... on RunConfigSchema { isRunConfigValid(runConfigData: {}) { __typename } } } }""",
        {"selector": {**REPOSITORY, "pipelineName": job}},
    )["runConfigSchemaOrError"]["isRunConfigValid"]["__typename"]


def test_materialize_all_selects_no_destruction(webserver):  # noqa: F811 (the fixture imported above)
    """The UI's "Materialize all" launches the asset job over every asset with an empty config:
    with the destruction among the assets, its required config made that launch fail."""
    port = webserver
    nodes = _graphql(port, "{ assetNodes { assetKey { path } } }")["assetNodes"]
    assert "study_data_destruction" not in {"/".join(n["assetKey"]["path"]) for n in nodes}
    assert _empty_config_check(port, "__ASSET_JOB") == "PipelineConfigValidationValid"
    # the destruction is its own job, in the launchpad, with its config required
    assert _empty_config_check(port, "destruction") == "RunConfigValidationInvalid"


@pytest.fixture
def daemon(webserver, tmp_path):  # noqa: F811
    """`dagster-daemon` as `make ui` runs it beside the webserver, the file and automation
    sensors stopped (they would launch runs of their own on the sample)."""
    port = webserver
    for name in ("raw_files_sensor", "automation_refresh"):
        state = _graphql(
            port,
            "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor { sensorState { id } } } }",
            {"s": {**REPOSITORY, "sensorName": name}},
        )["sensorOrError"]["sensorState"]
        _graphql(port, "mutation($id: String) { stopSensor(id: $id) { __typename } }", {"id": state["id"]})
    log = open(tmp_path / "daemon.log", "w")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(PACKAGE_ROOT / "workspace.yaml")],
        cwd=PACKAGE_ROOT, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(), start_new_session=True,
    )
    try:
        yield port
    finally:
        stop_group(process)
        log.close()


def test_a_run_cancelled_after_its_process_died_frees_the_pool_slot(daemon, sample_project):
    port = daemon
    instance = dg.DagsterInstance.get()
    code_server = None
    try:
        instance.add_dynamic_partitions("annees_bca", ["2017", "2018"])
        run_id = _launch(port, "ingest_bca", partition="2017")
        _wait(lambda: run_id in _holders(instance), 120, "the run never claimed the pool slot")
        # the run's process dies while its step holds the slot (the machine was short of memory, say)
        worker = _wait(lambda: _run_worker_pid(instance, run_id), 30, "no run worker")
        code_server = _parent(worker)  # left hung by its child's death, outside the webserver's group
        for pid in [*_descendants(worker), worker]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # the user cancels it from the UI: nothing answers, so the UI offers "Force termination"
        terminated = _slow_graphql(
            port,
            """mutation($id: String!) { terminateRun(runId: $id, terminatePolicy: MARK_AS_CANCELED_IMMEDIATELY) {
                 __typename } }""", {"id": run_id}, 300)["terminateRun"]
        assert terminated["__typename"] == "TerminateRunSuccess", terminated
        assert _status(port, run_id) in ("CANCELED", "FAILURE")  # the code server may notice the death first
        # the daemon's sensor frees what the dead run held; the next run goes through
        _wait(lambda: run_id not in _holders(instance), 150, "the cancelled run still holds the pool slot")
        # the code server whose run process was killed stops answering launches (Dagster's, not
        # the pool's): the code location is reloaded, as from the UI's Deployment page
        reloaded = _slow_graphql(
            port, """mutation($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {
                       __typename } }""", {"name": LOCATION}, 300)["reloadRepositoryLocation"]
        assert reloaded["__typename"] == "WorkspaceLocationEntry", reloaded
        second = _launch(port, "ingest_bca", partition="2018")
        _wait(lambda: _status(port, second) in ("SUCCESS", "FAILURE", "CANCELED"), 180, "the next run never ended")
        assert _status(port, second) == "SUCCESS"
        assert not _holders(instance)
    finally:
        instance.dispose()
        if code_server:
            try:
                os.kill(code_server, signal.SIGKILL)
            except ProcessLookupError:
                pass
