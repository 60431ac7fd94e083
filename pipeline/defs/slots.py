"""The sensor that frees the pool slots of ended runs, whoever launched them.

A run cancelled from the UI (or forcibly marked cancelled, or failed with its process
killed) may leave its step's slot of the pool `warehouse` claimed: every later run then
waits queued behind a run that no longer exists. `python -m pipeline` frees such slots before
each run it launches; this sensor does it for the runs the UI and the daemon launch, every
30 s while the daemon runs (`make ui`, `make ui-server`). On by default; it starts no run.
The logic is `pipeline.slots`.
"""

import dagster as dg

from pipeline.slots import free_slots_of_ended_runs

SENSOR_NAME = "free_pool_slots"


@dg.sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Frees the pool slots (pool `warehouse`) still held by runs that have ended (cancelled, failed, "
    "succeeded) or whose process is gone, so that no later run waits behind them. Starts no run.",
)
def free_pool_slots(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    freed = free_slots_of_ended_runs(context.instance)
    for item in freed:
        context.log.info(f"freed the {', '.join(item.pools)} pool slot(s) of run {item.run_id} ({item.status})")
    if not freed:
        return dg.SkipReason("no slot held by an ended run")
    return dg.SkipReason(
        f"freed the pool slots of {len(freed)} ended run(s): " + ", ".join(f"{f.run_id[:8]} ({f.status})" for f in freed)
    )


defs = dg.Definitions(sensors=[free_pool_slots])
