"""What `make run` prints when a step fails: the project's own errors as they are (they
name files, rules and tables), any other exception by its class only (its message may
quote a value of the data)."""

from __future__ import annotations

import dagster as dg

from pipeline.defs.warehouse import WarehouseBuildError
from pipeline.launch import failure_messages


@dg.asset
def ours() -> None:
    raise WarehouseBuildError("staging.caf_iris does not exist: materialize stg_caf_iris first")


@dg.asset
def theirs() -> None:
    raise KeyError("value-1234 of a commune")


@dg.asset
def refused() -> None:
    raise dg.Failure(description="BCA2020.xlsx: sheet 'BCA' missing")


def test_a_failed_step_says_what_to_do_and_never_quotes_an_unexpected_message():
    result = dg.materialize([ours, theirs, refused], raise_on_error=False)
    messages = failure_messages(result)
    assert "staging.caf_iris does not exist: materialize stg_caf_iris first" in messages
    assert "theirs: unexpected KeyError (details in the run's logs: make ui)" in messages
    assert any(m.startswith("BCA2020.xlsx: sheet 'BCA' missing") for m in messages)
    assert not any("value-1234" in m or "Error occurred while executing" in m for m in messages)


def test_the_pool_slot_of_a_run_killed_mid_write_is_freed_before_the_next_run(tmp_path):
    """A run killed (SIGKILL) while its step held the pool `warehouse` never frees the slot:
    the next run would wait for ever. Its process is gone: the slot is freed, the run failed.
    A live run's slot, or a run not launched by us (no process tags), is left alone."""
    import subprocess
    import sys

    from pipeline.launch import HOST_TAG, PID_TAG, release_slots_of_dead_runs, run_tags

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("warehouse", 3)
        runs = {}
        for name, tags in (("dead", {**run_tags(), PID_TAG: str(gone.pid)}), ("alive", run_tags()),
                           ("foreign", {HOST_TAG: run_tags()[HOST_TAG]})):
            run = instance.add_run(dg.DagsterRun(job_name="refresh", tags=tags))
            storage.claim_concurrency_slot("warehouse", run.run_id, "core_masking")
            runs[name] = run.run_id
        assert release_slots_of_dead_runs(instance) == [runs["dead"]]
        held = {claim.run_id for claim in storage.get_concurrency_info("warehouse").claimed_slots}
        assert held == {runs["alive"], runs["foreign"]}
        assert instance.get_run_by_id(runs["dead"]).status == dg.DagsterRunStatus.FAILURE
        assert release_slots_of_dead_runs(instance) == []


def test_the_sensor_frees_the_slots_of_ended_runs_whoever_launched_them(tmp_path):
    """A run the UI cancelled (or forcibly marked cancelled) while its step held the slot, and a
    failed one with a step still waiting: the sensor `free_pool_slots` frees both; a run still
    going keeps its slot."""
    from pipeline.definitions import defs

    sensor = defs.resolve_sensor_def("free_pool_slots")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and not sensor.targets
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("warehouse", 1)
        cancelled = instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED))
        storage.claim_concurrency_slot("warehouse", cancelled.run_id, "raw_bca")
        instance.report_run_canceled(cancelled, "cancelled from the UI")
        waiting = instance.add_run(dg.DagsterRun(job_name="refresh", status=dg.DagsterRunStatus.STARTED))
        storage.claim_concurrency_slot("warehouse", waiting.run_id, "core_masking")  # pending: no free slot
        instance.report_run_failed(waiting, "failed")
        going = instance.add_run(dg.DagsterRun(job_name="refresh", status=dg.DagsterRunStatus.STARTED))
        storage.claim_concurrency_slot("warehouse", going.run_id, "core_masking")
        result = sensor(dg.build_sensor_context(instance=instance))
        assert "2 ended run(s)" in result.skip_message
        info = storage.get_concurrency_info("warehouse")
        assert {c.run_id for c in info.claimed_slots} | {s.run_id for s in info.pending_steps} == {going.run_id}
        assert "no slot held" in sensor(dg.build_sensor_context(instance=instance)).skip_message
