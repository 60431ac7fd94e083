"""Automation: the file sensor on raw/, the refresh of what depends on new data, the
weekly full check.

- `raw_files_sensor` notices new and replaced files in raw/ by content hash, adds the
  years they bring to the source's partitions, and asks for one run of the job
  `ingest_<source>` per (source, year) with a run key made of the file's hash: the same
  file never runs twice, and a file that fails validation fails once, with its message,
  without retries.
- `automation_refresh` evaluates the automation conditions of the downstream assets
  (warehouse, disclosure, reports: the assets of the job `refresh`, which `make run`
  launches): they update once their inputs have changed. It is on by default. The
  destruction asset is never in its target.
- `verification_hebdomadaire` re-validates every staged year from its raw copy, which
  in turn refreshes indicators, masking, audit and reports. Off unless
  `config/operations.yaml` says `weekly_check: enabled: true`.

What the sensor reads from a file (its source and years) comes from the catalog through
`pipeline.extract`; nothing here parses data.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb

from pipeline.catalog import load_catalog
from pipeline.config_models.study import load_operations
from pipeline.defs.ingest import INGEST_JOB_PREFIX, INGEST_JOBS, year_partitions
from pipeline.extract import IngestError, fingerprint, raw_files, vintages_in_file
from pipeline.lifecycle import ingest_refusal
from pipeline.resources import ProjectResource, WarehouseLockTimeout, WarehouseResource

SENSOR_NAME = "raw_files_sensor"
REFRESH_SENSOR_NAME = "automation_refresh"
WEEKLY_SCHEDULE_NAME = "verification_hebdomadaire"
REFRESH_JOB = "refresh"
INGEST_GROUPS = ("raw", "staging")
# The code location's implicit asset job: the one job that runs any selection of assets
# whatever their partitions (the weekly check re-validates every source's years).
ASSET_JOB = "__ASSET_JOB"


@dataclass(frozen=True)
class FileState:
    size: int
    mtime_ns: int
    sha256: str


def scan(raw_dir: Path, known: dict[str, FileState]) -> dict[str, FileState]:
    """Current state of raw/; a file is hashed again only when its size or time changed."""
    state = {}
    for path in raw_files(raw_dir):
        name = str(path.relative_to(raw_dir))
        stat = path.stat()
        previous = known.get(name)
        if previous and previous.size == stat.st_size and previous.mtime_ns == stat.st_mtime_ns:
            state[name] = previous
        else:
            state[name] = FileState(stat.st_size, stat.st_mtime_ns, fingerprint(path).sha256)
    return state


def _load_cursor(cursor: str | None) -> dict[str, FileState]:
    if not cursor:
        return {}
    return {name: FileState(**fields) for name, fields in json.loads(cursor).items()}


def _dump_cursor(state: dict[str, FileState]) -> str:
    return json.dumps({name: vars(s) for name, s in sorted(state.items())})


def ingested_files(warehouse: WarehouseResource) -> set[tuple[str, int, str]]:
    """(source, year, sha256) of every file already in the ingest ledger, so that a file
    ingested by `make run` is not ingested again when the UI's sensor first looks at raw/."""
    warehouse = WarehouseResource(path=str(warehouse.database), lock_timeout_s=10)  # a tick does not wait long
    if not warehouse.database.exists():
        return set()
    try:
        with warehouse.connect(read_only=True) as con:
            return {(s, int(y), h) for s, y, h in con.execute(
                "SELECT source, year, sha256 FROM lineage.ingest_ledger").fetchall()}
    except (WarehouseLockTimeout, duckdb.Error):
        return set()  # busy or no ledger yet: the run keys still prevent a second run


@dg.sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    jobs=INGEST_JOBS,
    description="Watches raw/ and ingests new or replaced files (by content hash), one run per source and year.",
)
def raw_files_sensor(context: dg.SensorEvaluationContext, project: ProjectResource,
                     warehouse: WarehouseResource) -> dg.SensorResult | dg.SkipReason:
    paths = project.paths
    raw_dir = paths.raw
    known = _load_cursor(context.cursor)
    current = scan(raw_dir, known)
    changed = {name: s for name, s in current.items() if name not in known or known[name].sha256 != s.sha256}
    if not changed:
        return dg.SensorResult(skip_reason=dg.SkipReason("no new or replaced file in raw/"), cursor=_dump_cursor(current))
    refusal = ingest_refusal(paths)
    if refusal:
        # the files are remembered, so that a refused file is not proposed again at every tick
        return dg.SensorResult(skip_reason=dg.SkipReason(f"ingest refused: {refusal}"), cursor=_dump_cursor(current))

    catalog = load_catalog(paths)
    done = ingested_files(warehouse)
    run_requests, new_years, notes = [], {}, []
    for name, state in sorted(changed.items()):
        why = "new file" if name not in known else "replaced file"
        try:
            found = vintages_in_file(raw_dir / name, catalog)
        except IngestError as exc:
            notes.append(f"{why} {name} ignored: {exc}")
            context.log.warning(f"{why} {name} not ingested: {exc}")
            continue
        for vintage, _sheet in found:
            year = str(vintage.year)
            if (vintage.source, vintage.year, state.sha256) in done:
                notes.append(f"{name}: {vintage.source} {year} already ingested from this very file")
                continue
            partitions = year_partitions(vintage.source)
            if not context.instance.has_dynamic_partition(partitions.name, year):
                new_years.setdefault(partitions.name, set()).add(year)
            reason = f"{why} {name} (sha256 {state.sha256[:12]}): {vintage.source} {year}"
            context.log.info(reason)
            notes.append(reason)
            run_requests.append(
                dg.RunRequest(
                    job_name=f"{INGEST_JOB_PREFIX}{vintage.source}",
                    run_key=f"{vintage.source}:{year}:{state.sha256}",
                    asset_selection=[dg.AssetKey(f"raw_{vintage.source}"), dg.AssetKey(f"stg_{vintage.source}")],
                    partition_key=year,
                    tags={"caf/raison": why, "caf/fichier": name[:60], "caf/sha256": state.sha256[:16]},
                )
            )
    partition_requests = [
        dg.DynamicPartitionsDefinition(name=name).build_add_request(sorted(years)) for name, years in new_years.items()
    ]
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=partition_requests,
        skip_reason=None if run_requests else dg.SkipReason("; ".join(notes)),
        cursor=_dump_cursor(current),
    )


def _weekly_schedule() -> dg.ScheduleDefinition:
    # Its cron and default state are the definition's own: Dagster reads them when it loads the
    # code location (a change of config/operations.yaml shows after a reload of the location);
    # the evaluation reads the project through its resource, at each tick.
    settings = load_operations(ProjectResource().paths.config / "operations.yaml").weekly_check
    enabled = settings.enabled

    @dg.schedule(
        name=WEEKLY_SCHEDULE_NAME,
        cron_schedule=settings.cron,
        execution_timezone="Europe/Paris",
        job_name=ASSET_JOB,
        default_status=dg.DefaultScheduleStatus.RUNNING if enabled else dg.DefaultScheduleStatus.STOPPED,
        description="Weekly full check: re-validate every staged year from its raw copy; the automation "
        "then rebuilds indicators, masking, audit and reports.",
    )
    def weekly(context: dg.ScheduleEvaluationContext, project: ProjectResource):
        paths = project.paths
        refusal = ingest_refusal(paths)
        if refusal:
            return dg.SkipReason(f"no check on a closed study: {refusal}")
        catalog = load_catalog(paths)
        stamp = context.scheduled_execution_time.strftime("%Y-%m-%d")
        requests = []
        for source in catalog.sources.values():
            partitions = year_partitions(source.id)
            for year in context.instance.get_dynamic_partitions(partitions.name):
                requests.append(
                    dg.RunRequest(
                        run_key=f"weekly:{stamp}:{source.id}:{year}",
                        asset_selection=[dg.AssetKey(f"stg_{source.id}")],
                        partition_key=year,
                        tags={"caf/raison": "vérification hebdomadaire"},
                    )
                )
        return requests or dg.SkipReason("no year ingested yet")

    return weekly


def refresh_sensor(downstream: dg.AssetSelection) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        REFRESH_SENSOR_NAME,
        target=downstream,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Refreshes indicators, masking, audit and reports once their inputs change.",
    )


# Everything downstream of ingest, but never the destruction (group lifecycle).
DOWNSTREAM = dg.AssetSelection.all() - dg.AssetSelection.groups(*INGEST_GROUPS, "lifecycle")

refresh_job = dg.define_asset_job(
    REFRESH_JOB,
    selection=DOWNSTREAM,
    description="Rebuilds everything downstream of ingest (indicators, masking and audit, published table, "
    "reports, manifest) from the staging tables; `make run` launches it after the ingest jobs.",
)

defs = dg.Definitions(
    jobs=[refresh_job],
    sensors=[raw_files_sensor, refresh_sensor(DOWNSTREAM)],
    schedules=[_weekly_schedule()],
)
