"""What a benchmark measures, run in its own process on the project the environment
points at (CAF_PROJECT_DIR, DAGSTER_HOME): `python -m bench._runner COMMAND`.

- `materialize [--groups G,...] [--exclude-groups G,...] [--new-only] [--multiprocess N]`:
  the jobs `python -m pipeline run` launches (`pipeline.launch`), on the project's Dagster
  instance: the years found in raw/ are added to the year partitions, then each source's
  ingest job over its years (with `--new-only`: only the years not yet materialized, as the
  file sensor would ask), then the refresh job (as the automation refreshes).
  `--multiprocess N`: that last run on Dagster's multiprocess executor with N processes
  (the default is the in-process executor, as `python -m pipeline run`).
  Prints one line per run and each step's duration.
- `mask [--workers N] [--no-audit]`: `mask()` on confidential.indicators as
  `core_masking` does, then the blocking audit (`audit_published`, sums included) as
  its asset check does, without Dagster. Prints counts and timings, never a value.

Not a benchmark itself (the dispatcher skips modules starting with `_`).
"""

from __future__ import annotations

import argparse
import sys
import time


def asset_job():
    """A job over every unpartitioned asset on Dagster's multiprocess executor, rebuilt
    in each process the executor starts (`dg.reconstructable`)."""
    import dagster as dg

    from pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is None]
    job = dg.define_asset_job("bench_unpartitioned", selection=dg.AssetSelection.assets(*keys),
                              executor_def=dg.multiprocess_executor)
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def("bench_unpartitioned")


def _step_times(instance, run_id: str) -> str:
    stats = instance.get_run_step_stats(run_id)
    return " ".join(f"{s.step_key}={(s.end_time or 0) - (s.start_time or 0):.2f}s" for s in stats if s.start_time)


def materialize(groups: set[str] | None, exclude: set[str], new_only: bool, multiprocess: int) -> int:
    """The jobs `python -m pipeline run` launches (pipeline.launch), restricted to the asset
    groups asked for: each ingest job over its years (`new_only`: those not yet materialized),
    then the refresh job unless an ingest run failed."""
    import dagster as dg

    from pipeline.launch import REFRESH_JOB, definitions, failure_messages, ingest_jobs, launch, register_years

    defs = definitions()
    instance = dg.DagsterInstance.get()
    register_years(instance)
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    graph = defs.resolve_asset_graph()
    failed = 0

    def wanted(keys) -> list:
        return [k for k in keys if graph.get(k).group_name not in exclude
                and (groups is None or graph.get(k).group_name in groups)]

    def report(result, label: str, seconds: float) -> None:
        nonlocal failed
        failed += not result.success
        status = "ok" if result.success else "FAILED"
        print(f"{status}: {label} {seconds:.2f}s | {_step_times(instance, result.run_id)}", flush=True)
        for message in failure_messages(result):
            print("  " + message, flush=True)

    for name in ingest_jobs(defs):
        job = defs.resolve_job_def(name)
        keys = wanted(job.asset_layer.selected_asset_keys)
        years = list(job.partitions_def.get_partition_keys(dynamic_partitions_store=instance))
        if new_only and keys:
            done = set.intersection(*(set(instance.get_materialized_partitions(k)) for k in keys))
            years = [y for y in years if y not in done]
        if not keys or not years:
            continue
        started = time.perf_counter()
        launched = launch(name, instance, years, quiet, defs)
        report(launched.result, launched.label, time.perf_counter() - started)
    if failed:
        return 1
    selection = wanted(defs.resolve_job_def(REFRESH_JOB).asset_layer.selected_asset_keys)
    if not selection:
        return 0
    started = time.perf_counter()
    if multiprocess > 1:
        config = {**quiet, "execution": {"config": {"max_concurrent": multiprocess}}}
        result = dg.execute_job(dg.reconstructable(asset_job), instance, run_config=config,
                                asset_selection=selection, raise_on_error=False)
        label = f"{len(selection)} unpartitioned assets (multiprocess executor, {multiprocess} processes)"
    else:
        result = defs.resolve_job_def(REFRESH_JOB).execute_in_process(
            run_config=quiet, instance=instance, asset_selection=selection, raise_on_error=False)
        label = f"{len(selection)} unpartitioned assets"
    report(result, label, time.perf_counter() - started)
    return 1 if failed else 0


def mask_and_audit(workers: int | None, audit: bool) -> int:
    import duckdb

    from pipeline.disclosure.audit import audit_published
    from pipeline.disclosure.policy import load_policy
    from pipeline.disclosure.suppression import mask
    from pipeline.frames import read_compact
    from pipeline.indicators import load_indicators
    from pipeline.settings import project_paths
    from pipeline.territory import load_territory

    started = time.perf_counter()
    con = duckdb.connect(str(project_paths().warehouse), read_only=True)
    try:
        confidential = read_compact(con, "SELECT * FROM confidential.indicators")  # as core_masking reads it
    finally:
        con.close()
    territory, indicators, policy = load_territory(), load_indicators(), load_policy()
    zones = territory.zones()
    read = time.perf_counter()
    result = mask(confidential, zones, indicators, policy, territory.infra_communal_levels, workers=workers)
    masked = time.perf_counter()
    print(f"read {read - started:.2f}s mask {masked - read:.2f}s rounds {result.rounds} "
          f"subproblems {result.subproblems} counts {result.counts}", flush=True)
    if audit:
        check = audit_published(result.published, zones, indicators, policy)
        print(f"audit {time.perf_counter() - masked:.2f}s passed {check.passed} cells {check.cells_checked} "
              f"sums {check.groups_checked} lps {check.linear_programmes}", flush=True)
        return 0 if check.passed else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._runner")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("materialize")
    run.add_argument("--groups", help="only these asset groups (comma-separated)")
    run.add_argument("--exclude-groups", default="", help="skip these asset groups (comma-separated)")
    run.add_argument("--new-only", action="store_true", help="only the year partitions not yet materialized")
    run.add_argument("--multiprocess", type=int, default=0, help="processes of the multiprocess executor")
    masking = commands.add_parser("mask")
    masking.add_argument("--workers", type=int, default=None)
    masking.add_argument("--no-audit", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "materialize":
        groups = set(args.groups.split(",")) if args.groups else None
        exclude = {g for g in args.exclude_groups.split(",") if g}  # never the destruction: planned_runs
        return materialize(groups, exclude, args.new_only, args.multiprocess)
    return mask_and_audit(args.workers, not args.no_audit)


if __name__ == "__main__":
    sys.exit(main())
