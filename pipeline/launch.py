"""Launching the jobs of the definitions on an instance, as `python -m pipeline run|destroy`
and the tests do: nothing here decides what an asset needs, Dagster's jobs do.

`make run` is: add the years found in raw/ to each source's year partitions, then one run of
each `ingest_<source>` job over all the years of its partitions (one run over a range:
the ingest assets take a range in one run, `BackfillPolicy.single_run()`), then, if every
ingest run passed, one run of the `refresh` job. The release and destruction jobs run only
on their own request (`launch_release`, `launch_destruction`).

Each run's result is given back with a one-line label; the messages of the failed steps
name files and rules, never a value of the data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from pipeline.catalog import load_catalog
from pipeline.defs.automation import REFRESH_JOB
from pipeline.defs.ingest import INGEST_JOB_PREFIX, year_partitions
from pipeline.defs.lifecycle import DESTRUCTION_JOB
from pipeline.defs.lifecycle import OP_NAME as DESTRUCTION_OP
from pipeline.defs.releases import RELEASE_JOB, RELEASE_OP
from pipeline.errors import own_error_names
from pipeline.extract import present_years
from pipeline.lifecycle.gate import encode_sentinel
from pipeline.settings import project_paths
from pipeline.slots import HOST_TAG, PID_TAG, free_slots_of_ended_runs, run_tags  # noqa: F401 (re-exported)

# The run tags of a run over a range of partitions, as Dagster's single-run backfills set them.
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"

# Step-by-step events, errors and stack traces included, go to the instance (the UI shows
# them); the console gets the caller's line per run and one message per failing file.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def definitions() -> dg.Definitions:
    from pipeline.definitions import defs  # the code location, loaded once per process

    return defs


def register_years(instance: dg.DagsterInstance) -> dict[str, list[int]]:
    """Add to each source's year partitions the years whose file is in raw/."""
    found = present_years(project_paths().raw, load_catalog())
    for source, years in found.items():
        name = year_partitions(source).name
        new = [str(y) for y in years if not instance.has_dynamic_partition(name, str(y))]
        if new:
            instance.add_dynamic_partitions(name, new)
    return found


def partition_range_tags(keys: list[str]) -> dict[str, str]:
    """Tags of a run over the partitions `keys[0]` to `keys[-1]` (in the partitions
    definition's order: for year partitions, the order the years were added)."""
    return {PARTITION_RANGE_START_TAG: keys[0], PARTITION_RANGE_END_TAG: keys[-1]}


@dataclass
class Launched:
    job_name: str
    label: str
    result: dg.ExecuteInProcessResult

    @property
    def success(self) -> bool:
        return self.result.success

    @property
    def run_id(self) -> str:
        return self.result.run_id


def _label(job: dg.JobDefinition, years: list[str] | None) -> str:
    # an op job (the release) selects no asset: its name says what it does
    label = ", ".join(sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys)) or job.name
    if years and len(years) == 1:
        return label + f" [{years[0]}]"
    if years:
        return label + f" [{years[0]}...{years[-1]}: {len(years)} years]"
    return label


def launch(
    job_name: str,
    instance: dg.DagsterInstance,
    years: list[str] | None = None,
    run_config: dict | None = None,
    defs: dg.Definitions | None = None,
) -> Launched:
    """One run of the job `job_name` of the definitions on `instance` (over `years` for an
    ingest job: one year as a partition, several as a partition range)."""
    job = (defs or definitions()).resolve_job_def(job_name)
    partition_key, tags = None, run_tags()
    if years and len(years) == 1:
        partition_key = years[0]
    elif years:
        tags.update(partition_range_tags(years))
    release_slots_of_dead_runs(instance)
    result = job.execute_in_process(
        run_config=run_config, instance=instance, partition_key=partition_key, tags=tags, raise_on_error=False
    )
    return Launched(job_name, _label(job, years), result)


def release_slots_of_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Free the pool slots of the runs that ended, or whose process on this machine is gone
    (`pipeline.slots`); the ids of the runs freed. Called before each run this module launches."""
    return [freed.run_id for freed in free_slots_of_ended_runs(instance)]


def ingest_jobs(defs: dg.Definitions) -> list[str]:
    """The ingest jobs of the definitions, one per source of the catalog, in its order."""
    names = [f"{INGEST_JOB_PREFIX}{source}" for source in load_catalog().sources]
    declared = {job.name for job in defs.jobs or []}
    return [name for name in names if name in declared]


def run_all(instance: dg.DagsterInstance, run_config: dict | None = QUIET) -> Iterator[Launched]:
    """`make run`: each ingest job over the years registered for its source, then the
    refresh job unless an ingest run failed (nothing downstream of a failed ingest)."""
    defs = definitions()
    register_years(instance)
    failed = False
    for name in ingest_jobs(defs):
        partitions = defs.resolve_job_def(name).partitions_def
        years = list(partitions.get_partition_keys(dynamic_partitions_store=instance))
        if not years:  # no file of this source in raw/
            continue
        launched = launch(name, instance, years, run_config, defs)
        failed |= not launched.success
        yield launched
    if not failed:
        yield launch(REFRESH_JOB, instance, None, run_config, defs)


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    """The messages of the failed steps of a run (they name files and rules, never a value),
    without the exception's class name."""
    own = own_error_names()
    messages = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            # an exception raised in the step's code comes wrapped ("Error occurred while
            # executing op ..."): the project's own errors say what is wrong and never quote
            # a value; any other is reported by its class only (its message may quote data)
            if error.cause is not None and "Error occurred while executing" in error.message:
                step = event.step_key or "a step"
                if error.cause.cls_name in own:
                    error = error.cause
                else:
                    messages.append(f"{step}: unexpected {error.cause.cls_name} (details in the run's logs: make ui)")
                    continue
            message = error.message.strip()
            messages.append(re.sub(r"^[\w.]*(Failure|Error|Exception): ", "", message))
    return messages


def per_file(messages: list[str], raw_dir: Path) -> list[str]:
    """One paragraph per failing file (its problems, then what to do); other failures as they are."""
    names = {p.name for p in raw_dir.iterdir()} if raw_dir.is_dir() else set()
    blocks: dict[str, list[str]] = {}
    for message in messages:
        current = None
        for line in message.splitlines():
            name = line.split(": ", 1)[0]
            if not line.startswith(" ") and name in names:
                current = name
            blocks.setdefault(current or "", []).append(line)
    out = []
    for name, lines in blocks.items():
        text = "\n".join(lines)
        if name:
            text += (f"\n  -> what to do: check it with `make validate FILES=raw/{name}`, then fix or replace "
                     "the file, "
                     "or edit its entry in config/catalog.yaml, and run `make run` again")
        out.append(text)
    return out


def destruction_run_config(study_id: str, operator: str = "", sentinels: list[str] | None = None) -> dict:
    """The destruction job's run config: the study id repeated, the operator, the sentinels
    encoded (Dagster keeps the run config: never a sentinel in clear)."""
    return {
        "ops": {
            DESTRUCTION_OP: {
                "config": {
                    "study_id": study_id,
                    "operator": operator,
                    "sentinels": [encode_sentinel(s) for s in (sentinels or [])],
                }
            }
        },
        # the console gets the CLI's lines only (a refusal is not a traceback); every event,
        # warnings included, is in the instance (the UI's run page)
        **QUIET,
    }


def launch_destruction(
    instance: dg.DagsterInstance, study_id: str, operator: str = "", sentinels: list[str] | None = None
) -> Launched:
    """One run of the destruction job (`make destroy STUDY_ID=...`)."""
    return launch(DESTRUCTION_JOB, instance, None, destruction_run_config(study_id, operator, sentinels))


def release_run_config(operator: str = "", note: str = "") -> dict:
    """The release job's run config: who releases, and a note (never a figure)."""
    return {
        "ops": {RELEASE_OP: {"config": {"operator": operator, "note": note}}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }


def launch_release(instance: dg.DagsterInstance, operator: str = "", note: str = "") -> Launched:
    """One run of the release job (`make release`)."""
    return launch(RELEASE_JOB, instance, None, release_run_config(operator, note))


def report_lines(launched: Launched, raw_dir: Path, emit: Callable[[str], None]) -> None:
    """The CLI's line for a run, then one paragraph per failing file."""
    emit(f"{'ok' if launched.success else 'FAILED'}: {launched.label} (run {launched.run_id[:8]})")
    for message in per_file(failure_messages(launched.result), raw_dir):
        emit("  " + message.replace("\n", "\n  "))
