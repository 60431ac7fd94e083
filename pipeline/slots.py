"""A pool slot never outlives its run, whoever launched the run (the CLI, the UI, the daemon).

DuckDB takes one writer per file, so the assets that write the warehouse share the Dagster
pool `warehouse`, one slot. A run that ends without its step freeing the slot (cancelled
from the UI, forcibly marked as cancelled, failed while its process was killed) would keep
it, and every later run would wait queued behind it for ever. Two callers free such slots:

- `python -m pipeline run|release|destroy` and the tests, before each run they launch
  (`pipeline.launch.launch`);
- the sensor `free_pool_slots` (`pipeline.defs.slots`), every 30 s while the daemon runs
  (`make ui`, `make ui-server`), for the runs the UI and the daemon launched.

Small on purpose: it needs only the instance, never the definitions.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import dagster as dg

# Which process on which machine runs a run: set by `pipeline.launch` on the runs it launches
PID_TAG = "caf/pid"
HOST_TAG = "caf/host"


def run_tags() -> dict[str, str]:
    """The tags that say which process on which machine runs a run."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@dataclass(frozen=True)
class Freed:
    run_id: str
    status: str  # the run's status once freed (CANCELED, FAILURE, SUCCESS...; "absent": the run was deleted)
    pools: tuple[str, ...]


def free_slots_of_ended_runs(instance: dg.DagsterInstance) -> list[Freed]:
    """Free every pool slot (claimed or pending) held by a run that has ended, or by a run
    launched by this machine's CLI whose process is gone (that run is marked failed first).

    A run still running is never touched, except one carrying our process tags on this host
    whose process no longer exists (a SIGKILL, a power cut): nothing else would end it. A run
    the UI or the daemon launched and whose process died stays "started" until someone
    terminates it from the UI; its slot is freed at the next pass after that. Freeing a slot
    too early would cost only queueing: the warehouse's file lock is what keeps writers apart."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    host = socket.gethostname()
    pools_of: dict[str, set[str]] = {}
    for pool in storage.get_concurrency_keys():
        info = storage.get_concurrency_info(pool)
        holders = {claim.run_id for claim in info.claimed_slots} | {step.run_id for step in info.pending_steps}
        for run_id in holders:
            pools_of.setdefault(run_id, set()).add(pool)
    freed = []
    for run_id, pools in sorted(pools_of.items()):
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            pid = run.tags.get(PID_TAG)
            if not (pid and pid.isdigit() and run.tags.get(HOST_TAG) == host and not _alive(int(pid))):
                continue
            instance.report_run_failed(run, "its process is gone (killed mid-run): its pool slots are freed")
            run = instance.get_run_by_id(run_id)
        storage.free_concurrency_slots_for_run(run_id)
        freed.append(Freed(run_id, run.status.value if run is not None else "absent", tuple(sorted(pools))))
    return freed
