"""What `make run` says once its runs are done: the years and files the study covers and those
that never came, the files of raw/ it ignored, the rows it left out, and the warnings of its
runs, in a few lines. Without it, a year whose files never came was published as « nd » and a
file the catalog does not know (raw/BCA2022.xlsx) was skipped without a word.

Names, years, counts and the steps' own warnings only: never a value of the data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from pipeline.catalog import Catalog
from pipeline.coverage import Coverage
from pipeline.extract import IngestError, raw_files, vintages_in_file

# rows the ingest leaves out by design, counted in the raw and staging assets' metadata
LEFT_OUT = {
    "technical_rows_dropped": "technical rows (totals, blank codes)",
    "rows_outside_territory": "rows outside the territory",
    "rows_filtered_out": "rows filtered out by the catalog",
}
MAX_WARNINGS = 12


def _span(years: list[int]) -> str:
    if not years:
        return "none"
    if years == list(range(years[0], years[-1] + 1)) and len(years) > 2:
        return f"{years[0]}-{years[-1]}"
    return ", ".join(map(str, years))


def coverage_lines(coverage: Coverage) -> list[str]:
    """One line per source: the years received, and the years missing with the file expected."""
    lines = []
    for source in [*coverage.needed, *coverage.optional]:
        got, missing = coverage.years(source), coverage.missing(source)
        optional = source in coverage.optional
        if optional and not got:
            lines.append(f"  {source}: none received (optional, read below the commune: no IRIS figures)")
            continue
        text = f"  {source}: {_span(got)}"
        if missing:
            files = ", ".join(dict.fromkeys(coverage.expected_file.get((source, y), "?") for y in missing))
            text += f"; MISSING {_span(missing)} (expected {files}): published as not available"
        lines.append(text)
    return lines


def ignored_files(raw_dir: Path, catalog: Catalog) -> list[str]:
    """The files of raw/ no vintage of the catalog reads, with why (the validator's message)."""
    out = []
    for path in raw_files(raw_dir):
        try:
            vintages_in_file(path, catalog)
        except IngestError as exc:
            out.append(str(exc).splitlines()[0])
    return out


def left_out_rows(results: Iterable[dg.ExecuteInProcessResult]) -> list[str]:
    """Per source, the rows the ingest left out by design (summed over its years)."""
    counts: dict[str, dict[str, int]] = {}
    for result in results:
        for event in result.all_events:
            if not event.is_step_materialization:
                continue
            materialization = event.step_materialization_data.materialization
            source = materialization.asset_key.to_user_string().removeprefix("stg_")
            for key, what in LEFT_OUT.items():
                value = materialization.metadata.get(key)
                n = int(getattr(value, "value", value) or 0)
                if n:
                    counts.setdefault(source, {}).setdefault(what, 0)
                    counts[source][what] += n
    return [f"  {source}: " + ", ".join(f"{n} {what}" for what, n in whats.items())
            for source, whats in sorted(counts.items())]


def run_warnings(instance: dg.DagsterInstance, run_ids: Iterable[str]) -> list[str]:
    """The warnings the steps logged (header moved, rows below a sheet's end, communes absent...)."""
    out = []
    for run_id in run_ids:
        for entry in instance.all_logs(run_id):
            # warnings only: a failed step's error is the failure's own paragraph, said once
            if entry.dagster_event is None and logging.WARNING <= entry.level < logging.ERROR \
                    and entry.user_message:
                # Dagster's own notice that a step was skipped after a failure: the failure says it
                if entry.user_message.startswith("Dependencies for step"):
                    continue
                if entry.user_message not in out:
                    out.append(entry.user_message)
    return out


def summary_lines(instance: dg.DagsterInstance, results: list[dg.ExecuteInProcessResult], raw_dir: Path,
                  catalog: Catalog, coverage: Coverage | None) -> list[str]:
    lines = []
    if coverage is not None:
        lines += ["years covered (files ingested, by source):", *coverage_lines(coverage)]
    ignored = ignored_files(raw_dir, catalog)
    if ignored:
        lines += [f"files of raw/ ignored ({len(ignored)}): no vintage of config/catalog.yaml reads them",
                  *(f"  {message}" for message in ignored)]
    rows = left_out_rows(results)
    if rows:
        lines += ["rows left out by the ingest (as the catalog declares):", *rows]
    warnings = run_warnings(instance, [r.run_id for r in results])
    if warnings:
        lines.append(f"warnings ({len(warnings)}; every one in the runs' logs: make ui):")
        lines += [f"  {w}" for w in warnings[:MAX_WARNINGS]]
        if len(warnings) > MAX_WARNINGS:
            lines.append(f"  ... and {len(warnings) - MAX_WARNINGS} more")
    if coverage is not None and coverage.complete and not ignored and not warnings:
        lines.append("every year the indicators need was received; no file ignored, no warning")
    return lines


def project_summary(instance: dg.DagsterInstance, results: list[dg.ExecuteInProcessResult]) -> list[str]:
    """`summary_lines` for the project of the environment (its raw/, catalog, indicators and
    warehouse, read once the runs are done)."""
    from pipeline.catalog import load_catalog
    from pipeline.coverage import read_coverage
    from pipeline.indicators import load_indicators
    from pipeline.resources import WarehouseResource
    from pipeline.settings import project_paths

    paths = project_paths()
    catalog = load_catalog()
    coverage = None
    if paths.warehouse.exists():
        with WarehouseResource().connect(read_only=True) as con:
            coverage = read_coverage(con, load_indicators(), catalog)
    return summary_lines(instance, results, paths.raw, catalog, coverage)
