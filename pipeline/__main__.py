"""Command line: `python -m pipeline {sample,validate,run,release,destroy}`.

- `sample --out raw/ [--seed N] [--bundle] [--scale national [--communes N]]`: write the
  generated sample files (national: a synthetic France and its referential).
- `validate [FILE...]`: check every file of config/ (each by its model, then the checks
  between files), then parse and validate the files with the catalog and schemas the
  pipeline uses, before dropping them in `raw/`; exit 0 when all are valid.
- `schemas [--check]`: write the JSON Schemas of config/'s YAML files to config/schemas/
  from their models (`--check`: exit 1 if the written ones differ).
- `run`: check config/ as `validate` does, then launch the jobs of the definitions on the project's Dagster instance
  (`DAGSTER_HOME`), so the runs show in the UI: the `ingest_<source>` job of each source
  over all its years, then the `refresh` job; then say where outputs are. The
  destruction job is never part of it (`pipeline.launch`).
- `release [--operator NAME] [--note TEXT]`: launch the `release` job: record the current
  `published.indicators` in the immutable publication history (`make release`); prints
  `released R<n>: <rows> rows, fingerprint <12 hex>`, or why it is refused (exit 1).
- `destroy --study-id ID --operator NAME [--sentinel TEXT]...`: launch the `destruction`
  job: destroy the closed study's data (convention art. 2) and issue the certificate
  (`make destroy STUDY_ID=ID OPERATOR=NAME [SENTINEL=TEXT]`); prints `ok:`, `done, NOT
  VERIFIED:` (nothing of the data to search for) or `FAILED:` and only the refusal.

This module only parses arguments, launches jobs and prints one line per run and one
message per failing file (a config problem: `error: <file>: <key> <what was expected>`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.catalog import load_catalog
from pipeline.errors import PipelineError
from pipeline.extract import IngestError, extract, vintages_in_file
from pipeline.settings import project_paths
from pipeline.staging import stage
from pipeline.territory import load_territory
from pipeline.validation import validate


def config_problems() -> int:
    """Print every problem of config/ (one line each); return how many there are."""
    from pipeline.config_models.project import check_config

    problems = check_config(project_paths())
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return len(problems)


def schemas(check: bool) -> int:
    from pipeline.config_models.project import SCHEMAS, stale_schemas, write_schemas

    if check:
        stale = stale_schemas()
        for name in stale:
            print(f"error: {SCHEMAS / name}: differs from its model: run `python -m pipeline schemas`",
                  file=sys.stderr)
        return 1 if stale else 0
    print(f"{len(write_schemas())} schemas written to {SCHEMAS}")
    return 0


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
    """Add the years found in raw/ to the sources' year partitions (`pipeline.launch`)."""
    from pipeline.launch import register_years as register

    return register(instance)


def run_all() -> int:
    """`make run`: launch the jobs of the definitions on the project's instance (the ingest
    job of each source over its years, then the refresh job); return the number of failed runs."""
    import dagster as dg

    from pipeline.launch import report_lines
    from pipeline.launch import run_all as launch_all
    from pipeline.run_summary import project_summary

    failed, results = 0, []
    with dg.DagsterInstance.get() as instance:
        for launched in launch_all(instance):
            failed += not launched.success
            results.append(launched.result)
            report_lines(launched, project_paths().raw, print)
        # what the runs covered, ignored, left out and warned about, in a few lines
        for line in project_summary(instance, results):
            print(line)
    if failed:
        print(f"{failed} run(s) failed: nothing downstream was rebuilt, the last good tables and reports stay. "
              "The runs' logs are in the Dagster UI (make ui).")
    return failed


def release_study(operator: str, note: str) -> int:
    """`make release`: launch the release job on the project's instance; one line, or the refusal."""
    import dagster as dg

    from pipeline.defs.releases import RELEASE_OP
    from pipeline.launch import failure_messages, launch_release

    with dg.DagsterInstance.get() as instance:
        launched = launch_release(instance, operator=operator, note=note)
    if launched.success:
        done = launched.result.output_for_node(RELEASE_OP)
        print(f"released {done['release_id']}: {done['rows']} rows, fingerprint {done['table_fingerprint'][:12]}")
        return 0
    for message in failure_messages(launched.result) or [f"the release run {launched.run_id[:8]} failed"]:
        print(message, file=sys.stderr)
    return 1


def destroy_study(study_id: str, operator: str, sentinels: list[str]) -> int:
    """`make destroy STUDY_ID=...`: launch the destruction job on the project's instance."""
    import dagster as dg

    from pipeline.defs.lifecycle import OP_NAME
    from pipeline.launch import failure_messages, launch_destruction

    with dg.DagsterInstance.get() as instance:
        launched = launch_destruction(instance, study_id, operator=operator, sentinels=sentinels)
    if launched.success:
        done = launched.result.output_for_node(OP_NAME)
        where = f"certificate: {done['certificate_html']}\n             {done['certificate_json']}"
        if done.get("already_destroyed_on"):
            late = done.get("late_raw_files_destroyed", 0)
            print(f"ok: the data of study {study_id} were destroyed on {done['already_destroyed_on']}; "
                  + (f"{late} file(s) found in raw/ since were destroyed too (the certificate lists them); "
                     if late else "")
                  + f"checked again (run {launched.run_id[:8]}): "
                  + ("no trace found" if done["residue_scan_conclusive"] else
                     "NOT CONCLUSIVE, nothing of the data to search for (give SENTINEL='...')"))
        elif not done["residue_scan_conclusive"]:
            # the data are gone, but a scan with nothing to search for proves nothing: say so first
            print(f"done, NOT VERIFIED: the data of study {study_id} were destroyed (run {launched.run_id[:8]}), but "
                  "the residue scan had no value of the data to search for (none given, none derived: the "
                  "certificate says why); it only looked for identical copies of the files received and found none."
                  f"\n  To verify: make destroy STUDY_ID={study_id} OPERATOR='...' SENTINEL='<a text you know the "
                  "CAF files held>'")
        else:
            print(f"ok: destruction of study {study_id} complete (run {launched.run_id[:8]}): "
                  f"{done['residue_scan_sentinels_given'] + done['residue_scan_sentinels_derived']} value(s) of the "
                  "data searched for, no trace found")
        print(where)
        return 0
    print(f"FAILED: destruction of study {study_id} (run {launched.run_id[:8]})", file=sys.stderr)
    for message in failure_messages(launched.result):
        print("  " + message.replace("\n", "\n  "), file=sys.stderr)
    return 1


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
    sample.add_argument("--if-empty", action="store_true",
                        help="only if the folder holds no data file yet (make run on a fresh clone)")
    check = commands.add_parser("validate", help="validate config/, and files before dropping them in raw/")
    check.add_argument("files", nargs="*", type=Path)
    schema = commands.add_parser("schemas", help="write the JSON Schemas of config/ from their models")
    schema.add_argument("--check", action="store_true", help="only say whether the written ones are up to date")
    commands.add_parser("run", help="materialize every asset on the project's Dagster instance")
    release = commands.add_parser("release", help="record the current published table as a release")
    release.add_argument("--operator", default=os.environ.get("OPERATOR", ""),
                         help="who releases (name, role); default: the OPERATOR environment variable")
    release.add_argument("--note", default="", help="a note kept with the release (never a figure)")
    destroy = commands.add_parser("destroy", help="destroy the closed study's data and issue the certificate")
    destroy.add_argument("--study-id", required=True, help="the study_id of config/study.yaml, repeated")
    destroy.add_argument("--operator", default=os.environ.get("OPERATOR", ""),
                         help="who asks for the destruction (name, role), required: the certificate names them; "
                         "default: the OPERATOR environment variable")
    destroy.add_argument("--sentinel", action="append", default=[],
                         help="a known value to search for after destruction (repeatable)")
    args = parser.parse_args(argv)

    try:
        if args.command == "sample":
            from pipeline.lifecycle import ingest_refusal
            from pipeline.sample import generate

            # raw/ is where the CAF's files arrive: once the study is closed or its data destroyed,
            # fake ones there would be taken for received data (and destroyed as such)
            why = ingest_refusal() if args.out.resolve() == project_paths().raw.resolve() else None
            if why:
                print(f"no sample written to {args.out}: {why.removeprefix('ingest refused: ')}")
                return 0
            if args.if_empty and args.out.is_dir() and any(
                    p.is_file() and not p.name.startswith(".") and not p.name.upper().startswith("README")
                    for p in args.out.rglob("*")):
                print(f"{args.out} already holds files: no sample generated")
                return 0
            written = generate(args.out, seed=args.seed, bundle=args.bundle, sentinel=args.sentinel,
                               scale=args.scale, n_communes=args.communes)
            print(f"{len(written)} sample files written to {args.out}")
            return 0
        if args.command == "schemas":
            return schemas(args.check)
        if args.command in ("validate", "run") and config_problems():
            print("config/ has problems: fix them first (config/README.md)", file=sys.stderr)
            return 2
        if args.command == "validate" and not args.files:
            print("ok: config/ is valid")
            return 0
        if args.command == "validate":
            bad = validate_files(args.files)
            print(f"{len(args.files) - bad} of {len(args.files)} file(s) valid")
            return 1 if bad else 0
        if args.command == "run":
            from pipeline.lifecycle import ingest_refusal

            if why := ingest_refusal():  # a closed or destroyed study: every run would fail on it
                print(f"error: nothing was run: {why}", file=sys.stderr)
                return 1
            failed = run_all()
            paths = project_paths()
            print(f"warehouse: {paths.warehouse}\nreports:   {paths.reports}")
            return 1 if failed else 0
        if args.command == "release":
            return release_study(args.operator, args.note)
        if args.command == "destroy":
            # `make destroy SENTINEL=...` passes it in the environment: never on a command line `ps` shows
            given = args.sentinel + ([os.environ["SENTINEL"]] if os.environ.get("SENTINEL") else [])
            return destroy_study(args.study_id, args.operator, given)
    except PipelineError as exc:  # the project's own errors: a message for the user, never a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
