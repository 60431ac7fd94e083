"""Command line: `python -m pipeline {sample,validate,run,destroy}`.

- `sample --out raw/ [--seed N] [--bundle] [--scale national [--communes N]]`: write the
  generated sample files (national: a synthetic France and its referential).
- `validate FILE...`: parse and validate files with the catalog and schemas the
  pipeline uses, before dropping them in `raw/`; exit 0 when all are valid.
- `run`: materialize every asset on the project's Dagster instance (`DAGSTER_HOME`), so
  the runs show in the UI: one run per source over all its years, then one run of the
  rest; then say where outputs are.
  The `lifecycle` group (the destruction) is never part of it.
- `destroy --study-id ID [--operator NAME] [--sentinel TEXT]...`: destroy the closed
  study's data (convention art. 2) and issue the certificate (`make destroy STUDY_ID=ID`).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from pipeline.catalog import CatalogError, load_catalog
from pipeline.extract import IngestError, extract, vintages_in_file
from pipeline.lifecycle import LIFECYCLE_GROUP
from pipeline.settings import project_paths
from pipeline.staging import stage
from pipeline.territory import TerritoryError, load_territory
from pipeline.validation import validate


def validate_files(files: list[Path]) -> int:
    """Print a report per file and table; return the number of files with problems."""
    catalog, territory = load_catalog(), load_territory()
    bad = 0
    for path in files:
        try:
            found = vintages_in_file(path, catalog)
            problems = []
            for vintage, sheet in found:
                try:
                    table = extract(path, vintage, sheet)
                except IngestError as exc:
                    problems.append(str(exc))
                    continue
                staged = stage(table.frame, vintage, catalog.source(vintage.source), catalog, territory)
                report = validate(staged, territory, catalog)
                where = f"{path.name}" + (f", sheet {sheet!r}" if table.sheet else "")
                for warning in table.warnings + report.warnings:
                    print(f"warning: {where}: {warning}")
                if report.passed:
                    outside = (f", {report.rows_outside_territory} rows outside the territory left out"
                               if report.rows_outside_territory else "")
                    print(f"ok: {where}: {vintage.source} {vintage.year}, {report.rows_checked} zones{outside}")
                else:
                    problems.append(str(report.to_error()))
        except IngestError as exc:
            problems = [str(exc)]
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        bad += bool(problems)
    return bad


def register_years(instance) -> dict[str, list[int]]:
    """Add to each source's year partitions the years whose file is in raw/."""
    from pipeline.defs.ingest import year_partitions
    from pipeline.extract import present_years

    found = present_years(project_paths().raw, load_catalog())
    for source, years in found.items():
        name = year_partitions(source).name
        new = [str(y) for y in years if not instance.has_dynamic_partition(name, str(y))]
        if new:
            instance.add_dynamic_partitions(name, new)
    return found


# The run tags of a run over a range of partitions, as Dagster's single-run backfills set them.
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


def partition_range_tags(keys: list[str]) -> dict[str, str]:
    """Tags of a run over the partitions `keys[0]` to `keys[-1]` (in the partitions
    definition's order: for year partitions, the order the years were added)."""
    return {PARTITION_RANGE_START_TAG: keys[0], PARTITION_RANGE_END_TAG: keys[-1]}


def planned_runs(instance, graph, include=lambda node: True, new_only: bool = False):
    """The runs that materialize the selected assets, in order: `(asset keys, years)`,
    years None for the unpartitioned assets (last). The ingest of one source shares one
    partitions definition (its years): one run over all the years when every asset of it
    takes a range in one run (single-run backfill policy), else one run per year.
    `new_only`: only the years not yet materialized (as the file sensor would ask).
    The lifecycle assets are never planned: the destruction runs only on explicit request."""
    import dagster as dg

    partitioned: dict[dg.PartitionsDefinition, list[dg.AssetKey]] = {}
    unpartitioned: list[dg.AssetKey] = []
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.group_name == LIFECYCLE_GROUP or not include(node):
            continue
        if node.partitions_def is None:
            unpartitioned.append(key)
        else:
            partitioned.setdefault(node.partitions_def, []).append(key)
    runs: list[tuple[list, list[str] | None]] = []
    for pdef, keys in partitioned.items():
        keys = sorted(keys, key=lambda k: k.to_user_string())
        years = list(pdef.get_partition_keys(dynamic_partitions_store=instance))
        if new_only:
            done = [instance.get_materialized_partitions(k) for k in keys]
            years = [y for y in years if not all(y in d for d in done)]
        single_run = all(
            (policy := graph.get(key).backfill_policy) is not None and policy.max_partitions_per_run is None
            for key in keys
        )
        runs += [(keys, chunk) for chunk in ([years] if single_run else [[y] for y in years]) if chunk]
    if unpartitioned:
        runs.append((unpartitioned, None))
    return runs


def materialize_run(defs, instance, selection: list, years: list[str] | None, run_config: dict | None = None):
    """One run of `selection` (over `years`, for partitioned assets) on `instance`;
    returns (the run's result, a label for it)."""
    import dagster as dg

    label = ", ".join(sorted(k.to_user_string() for k in selection))
    partition_key, tags = None, None
    if years and len(years) == 1:
        label, partition_key = label + f" [{years[0]}]", years[0]
    elif years:
        label, tags = label + f" [{years[0]}...{years[-1]}: {len(years)} years]", partition_range_tags(years)
    result = dg.materialize(
        list(defs.assets) + list(defs.asset_checks or []), selection=selection, partition_key=partition_key,
        instance=instance, resources=defs.resources, raise_on_error=False, run_config=run_config, tags=tags,
    )
    return result, label


def failure_messages(result) -> list[str]:
    """The messages of the failed steps of a run (they name files and rules, never a value),
    without the exception's class name."""
    messages = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            message = event.step_failure_data.error.message.strip()
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
            text += (f"\n  -> what to do: check it with `make validate FILES=raw/{name}`, then fix or replace the file, "
                     "or edit its entry in config/catalog.yaml, and run `make run` again")
        out.append(text)
    return out


def run_all() -> int:
    """Materialize every asset on the project's instance; return the number of failed runs."""
    import dagster as dg

    from pipeline.definitions import defs

    # Step-by-step events, errors and stack traces included, go to the instance (the UI shows
    # them); the console gets a line per run and one message per failing file.
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    instance = dg.DagsterInstance.get()
    register_years(instance)
    failed = 0
    for selection, years in planned_runs(instance, defs.resolve_asset_graph()):
        if years is None and failed:
            break  # nothing downstream of a failed ingest
        result, label = materialize_run(defs, instance, selection, years, quiet)
        failed += not result.success
        print(f"{'ok' if result.success else 'FAILED'}: {label} (run {result.run_id[:8]})")
        for message in per_file(failure_messages(result), project_paths().raw):
            print("  " + message.replace("\n", "\n  "))
    if failed:
        print(f"{failed} run(s) failed: nothing downstream was rebuilt, the last good tables and reports stay. "
              "The runs' logs are in the Dagster UI (make ui).")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sample = commands.add_parser("sample", help="write generated sample files")
    sample.add_argument("--out", type=Path, default=project_paths().raw)
    sample.add_argument("--seed", type=int, default=2022)
    sample.add_argument("--bundle", action="store_true", help="one workbook with a sheet per table")
    sample.add_argument("--sentinel", help="a marker string written into every file (destruction tests)")
    sample.add_argument("--scale", choices=["cabbalr", "national"], default="cabbalr",
                        help="national: a synthetic France, its referential written to ../config beside --out")
    sample.add_argument("--communes", type=int, help="with --scale national: how many communes")
    check = commands.add_parser("validate", help="validate files before dropping them in raw/")
    check.add_argument("files", nargs="+", type=Path)
    commands.add_parser("run", help="materialize every asset on the project's Dagster instance")
    destroy = commands.add_parser("destroy", help="destroy the closed study's data and issue the certificate")
    destroy.add_argument("--study-id", required=True, help="the study_id of config/study.yaml, repeated")
    destroy.add_argument("--operator", default="", help="who asks for the destruction (for the certificate)")
    destroy.add_argument("--sentinel", action="append", default=[],
                         help="a known value to search for after destruction (repeatable)")
    args = parser.parse_args(argv)

    try:
        if args.command == "sample":
            from pipeline.sample import generate

            written = generate(args.out, seed=args.seed, bundle=args.bundle, sentinel=args.sentinel,
                               scale=args.scale, n_communes=args.communes)
            print(f"{len(written)} sample files written to {args.out}")
            return 0
        if args.command == "validate":
            bad = validate_files(args.files)
            print(f"{len(args.files) - bad} of {len(args.files)} file(s) valid")
            return 1 if bad else 0
        if args.command == "run":
            failed = run_all()
            paths = project_paths()
            print(f"warehouse: {paths.warehouse}\nreports:   {paths.reports}")
            return 1 if failed else 0
        if args.command == "destroy":
            from pipeline.defs.lifecycle import launch_destruction

            return launch_destruction(args.study_id, operator=args.operator, sentinels=args.sentinel)
    except (CatalogError, TerritoryError, IngestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
