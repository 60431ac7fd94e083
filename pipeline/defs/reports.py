"""Report assets: the documents for the Petite Enfance committees, in reports/.

    out_indicators (disclosure) -> out_rapport_excel  reports/indicateurs_petite_enfance.xlsx
                                -> out_rapport_html   reports/rapport_petite_enfance.html
                                   each with a blocking guard check (rapport_*_conforme)

Both read `published.indicators` for the figures, and the ingest ledger for which years'
files came and when (`pipeline.coverage`: names, years, dates, never a figure), through a
read-only connection: never a confidential, staging or raw table. Each file is written beside its final place, checked
by the guard (`pipeline.reports.guard`), and moved into reports/ only when it passes, so a
faulty document never replaces a good one. The checks re-read the files in reports/
against the current `published.indicators` (they also catch a report left stale by a
newer disclosure).

Dagster metadata and logs carry counts, paths, codes and hashes only, never a figure.

Each asset and check runs its work inside `_own_objects_only()`: building or re-reading a
document allocates a few hundred thousand short-lived objects, and every full pass of
Python's cyclic garbage collector then re-scanned the whole process (Dagster, the code
location), which cost about as much as the work itself. The objects that exist when the
step starts are frozen out of the collector and handed back at the end; the step's own
garbage is still collected.
"""

import gc
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from pipeline.coverage import read_coverage
from pipeline.reports.context import EXCEL_NAME, HTML_NAME, ReportContext, ReportError, build_context, read_published
from pipeline.reports.excel import write_workbook
from pipeline.reports.geo import Geometry, load_geometry
from pipeline.reports.guard import GuardReport, check_html, check_workbook
from pipeline.reports.html import write_html
from pipeline.resources import ProjectResource, WarehouseResource

GROUP = "reports"
PUBLISHED_ASSET = dg.AssetKey("out_indicators")
EXCEL_CHECK = "rapport_excel_conforme"
HTML_CHECK = "rapport_html_conforme"


@contextmanager
def _own_objects_only() -> Iterator[None]:
    """Leave the objects older than this block out of the cyclic collector's passes (see the
    module docstring). Nothing is cached and no collection is skipped for new objects."""
    if gc.get_freeze_count():  # someone else keeps objects frozen: leave that alone
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def load_report_context(project: ProjectResource, warehouse: WarehouseResource) -> ReportContext:
    """published.indicators (read-only) and the configuration, or a Failure saying what to do."""
    try:
        indicators = project.indicators()
        with warehouse.connect(read_only=True) as con:
            published = read_published(con, indicators)
            # which years' files came (names, years and dates of the ingest ledger, never a figure):
            # the documents state it and draw only the years covered; their date is the files'
            coverage = read_coverage(con, indicators, project.catalog())
        # the configuration as the resource read it once for the run; the study's sign-off from config/study.yaml
        return build_context(published, project.paths, indicators=indicators, territory=project.territory(),
                             config=project.report_config(), coverage=coverage,
                             policy=project.policy())
    except (FileNotFoundError, ReportError, ValueError) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def _geometry(report: ReportContext) -> Geometry:
    config = report.config
    return load_geometry(config.geometry_path, config.code_property, report.territory)


def _file_metadata(path: Path, root: Path) -> dict:
    return {
        "path": dg.MetadataValue.path(_relative(path, root)),
        "size_bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def _write_guarded(target: Path, write: Callable[[Path], dict], check: Callable[[Path], GuardReport]) -> tuple[dict, GuardReport]:
    """Write to a temporary file beside `target`, guard it, then move it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.stem}.en-cours{target.suffix}")
    try:
        stats = write(temporary)
        guard = check(temporary)
        if not guard.passed:
            raise dg.Failure(
                description=guard.message().replace(temporary.name, target.name),
                metadata={k: v for k, v in guard.metadata().items() if k != "file"},
                allow_retries=False,
            )
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return stats, guard


def _guard_metadata(guard: GuardReport) -> dict:
    return {
        "guard_cells_checked": guard.cells_checked,
        "guard_masked_cells_checked": guard.masked_cells_checked,
        "guard_parts_checked": guard.parts_checked,
    }


@dg.asset(
    automation_condition=dg.AutomationCondition.eager(),
    group_name=GROUP,
    kinds={"excel"},
    deps=[PUBLISHED_ASSET],
    metadata={"file": f"reports/{EXCEL_NAME}", "reads": "published.indicators"},
)
def out_rapport_excel(
    context: dg.AssetExecutionContext, project: ProjectResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Workbook for the Petite Enfance committees (reports/indicateurs_petite_enfance.xlsx): the published, secrecy-masked indicators of published.indicators (CAF du Pas-de-Calais, Cnaf, Insee) per indicator, per RPE, with cover and methodology."""
    with _own_objects_only():
        report = load_report_context(project, warehouse)
        target = project.paths.reports / EXCEL_NAME
        stats, guard = _write_guarded(
            target, lambda path: write_workbook(report, path), lambda path: check_workbook(path, report)
        )
    context.log.info(f"{_relative(target, project.paths.root)}: {stats['sheets']} sheets, guard passed on {guard.cells_checked} cells")
    return dg.MaterializeResult(
        metadata={**_file_metadata(target, project.paths.root), **stats, **_guard_metadata(guard), "data_version": report.data_version}
    )


@dg.asset(
    automation_condition=dg.AutomationCondition.eager(),
    group_name=GROUP,
    kinds={"html"},
    deps=[PUBLISHED_ASSET],
    metadata={"file": f"reports/{HTML_NAME}", "reads": "published.indicators"},
)
def out_rapport_html(
    context: dg.AssetExecutionContext, project: ProjectResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Self-contained web page for the Petite Enfance committees (reports/rapport_petite_enfance.html): trends per RPE, communes and maps of the published, secrecy-masked indicators of published.indicators (CAF du Pas-de-Calais, Cnaf, Insee)."""
    with _own_objects_only():
        report = load_report_context(project, warehouse)
        geometry = _geometry(report)
        if not geometry.available:
            context.log.warning(f"maps replaced by a note: {geometry.problem}")
        elif geometry.missing:
            context.log.warning(
                f"{len(geometry.missing)} commune code(s) without outline in {geometry.source.name}: "
                + ", ".join(geometry.missing)
            )
        target = project.paths.reports / HTML_NAME
        stats, guard = _write_guarded(
            target,
            lambda path: write_html(report, geometry, path),
            lambda path: check_html(path, report, maps_expected=geometry.available),
        )
    context.log.info(f"{_relative(target, project.paths.root)}: {stats['charts']} charts, guard passed on {guard.cells_checked} cells")
    return dg.MaterializeResult(
        metadata={
            **_file_metadata(target, project.paths.root),
            **{k: v for k, v in stats.items() if v is not None},
            **_guard_metadata(guard),
            "data_version": report.data_version,
            "geometry_file": str(geometry.source) if geometry.source else "",
            "geometry_problem": geometry.problem or "",
            "communes_without_outline": dg.MetadataValue.json(geometry.missing),
        }
    )


def _check_result(path: Path, root: Path, run_guard: Callable[[Path], GuardReport]) -> dg.AssetCheckResult:
    if not path.exists():
        return dg.AssetCheckResult(
            passed=False, description=f"{path.name} is not in reports/", metadata={"file": _relative(path, root)}
        )
    guard = run_guard(path)
    return dg.AssetCheckResult(
        passed=guard.passed,
        description=guard.message(),
        metadata={**{k: v for k, v in guard.metadata().items() if k != "first_problems"},
                  "first_problems": dg.MetadataValue.json(guard.problems[:50]), "file": _relative(path, root)},
    )


@dg.asset_check(
    asset=out_rapport_excel, name=EXCEL_CHECK, blocking=True, automation_condition=dg.AutomationCondition.eager()
)
def rapport_excel_conforme(
    context: dg.AssetCheckExecutionContext, project: ProjectResource, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    """Re-reads reports/indicateurs_petite_enfance.xlsx: every figure equals published.indicators, masked cells show their symbol (never a number or a blank), every sheet names the CAF (and Cnaf / Insee) as source, no formula."""
    with _own_objects_only():
        report = load_report_context(project, warehouse)
        return _check_result(project.paths.reports / EXCEL_NAME, project.paths.root, lambda path: check_workbook(path, report))


@dg.asset_check(
    asset=out_rapport_html, name=HTML_CHECK, blocking=True, automation_condition=dg.AutomationCondition.eager()
)
def rapport_html_conforme(
    context: dg.AssetCheckExecutionContext, project: ProjectResource, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    """Re-reads reports/rapport_petite_enfance.html: every figure of the chart tables equals published.indicators, masked cells show their symbol, every chart and the page carry the source line, nothing is loaded from outside the file."""
    with _own_objects_only():
        report = load_report_context(project, warehouse)
        geometry = _geometry(report)
        return _check_result(project.paths.reports / HTML_NAME, project.paths.root,
                             lambda path: check_html(path, report, maps_expected=geometry.available))


report_assets = [out_rapport_excel, out_rapport_html]
report_checks = [rapport_excel_conforme, rapport_html_conforme]

defs = dg.Definitions(assets=report_assets, asset_checks=report_checks)
