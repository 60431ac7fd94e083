"""The report assets in Dagster (pipeline/defs/reports.py): declaration, lineage (no
confidential upstream), materialization from a published.indicators table, the blocking
guard checks, and failures that leave the last good report in place."""

from __future__ import annotations

import re

import dagster as dg
import openpyxl
import pytest

from pipeline.defs import reports
from pipeline.lineage import CONFIDENTIAL
from pipeline.reports.context import EXCEL_NAME, HTML_NAME
from pipeline.resources import ProjectResource, WarehouseResource
from tests.test_reports import SHIPPED_GEO, SMALL_SET
from tests.test_reports_support import (
    SENTINEL,
    full_published,
    sentinel_texts,
    tiny_published,
    write_warehouse,
)

REPORT_KEYS = {dg.AssetKey("out_rapport_excel"), dg.AssetKey("out_rapport_html")}


def run(selection=None, instance=None) -> dg.ExecuteInJobResult:
    return dg.materialize(
        reports.report_assets + reports.report_checks,
        selection=selection,
        resources={"project": ProjectResource(), "warehouse": WarehouseResource()},
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def failure_messages(result: dg.ExecuteInJobResult) -> str:
    return "\n".join(
        e.step_failure_data.error.message
        for e in result.all_events
        if e.is_step_failure and e.step_failure_data and e.step_failure_data.error
    )


def use_geometry(project) -> None:
    """Point config/report.yaml of the test project at the outlines the project ships."""
    path = SHIPPED_GEO
    config = project / "config" / "report.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(re.sub(r"(?m)^  path: .*$", f"  path: {path}", text, count=1), encoding="utf-8")


@pytest.fixture
def small_warehouse(project):
    """The test project with a published.indicators of three indicators, and the
    confidential tables beside it holding SENTINEL."""
    frame = full_published()
    write_warehouse(project / "warehouse" / "warehouse.duckdb", frame[frame["indicator"].isin(SMALL_SET)])
    use_geometry(project)
    return project


# ---- declaration and lineage ------------------------------------------------------------------


def test_report_assets_are_declared_for_the_committees():
    specs = {spec.key: spec for a in reports.report_assets for spec in a.specs}
    assert set(specs) == REPORT_KEYS
    for _key, spec in specs.items():
        assert spec.group_name == "reports"
        assert {d.asset_key for d in spec.deps} == {dg.AssetKey("out_indicators")}
        assert spec.description and "\n" not in spec.description.strip()
        assert "published.indicators" in spec.description
    assert specs[dg.AssetKey("out_rapport_excel")].kinds == {"excel"}
    assert specs[dg.AssetKey("out_rapport_html")].kinds == {"html"}
    checks = [spec for c in reports.report_checks for spec in c.check_specs]
    assert {c.asset_key for c in checks} == REPORT_KEYS
    assert all(c.blocking for c in checks)
    # owner and classification come from config/governance.yaml, applied when the code location loads
    from pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in REPORT_KEYS:
        node = graph.get(key)
        assert node.tags.get("classification") == "publiable"
        assert list(node.owners) == ["team:donnees-cabbalr"]


def test_no_report_asset_has_a_confidential_upstream():
    """In the project's whole asset graph, the reports' only parent is out_indicators, which
    is not confidential: every confidential table is upstream of it, never of a report directly."""
    from pipeline.definitions import defs

    registered = {k for a in defs.assets for k in getattr(a, "keys", [])}
    if not REPORT_KEYS <= registered:  # not registered yet by the lead: add them to the graph here
        defs = dg.Definitions.merge(
            defs, dg.Definitions(assets=reports.report_assets, asset_checks=reports.report_checks)
        )
    graph = defs.resolve_asset_graph()
    for key in REPORT_KEYS:
        parents = graph.get(key).parent_keys
        assert parents == {dg.AssetKey("out_indicators")}, parents
        for parent in parents:
            node = graph.get(parent)
            assert node.tags.get("classification") != CONFIDENTIAL
            if node.is_materializable:  # the disclosure stage is registered: it publishes
                assert node.tags.get("classification") == "publiable"
                assert graph.get(parent).group_name == "disclosure"
    confidential = [k for k in graph.get_all_asset_keys() if graph.get(k).tags.get("classification") == CONFIDENTIAL]
    for key in confidential:
        assert not (graph.get(key).child_keys & REPORT_KEYS), key


# ---- materialization ----------------------------------------------------------------------------


def test_reports_from_published_indicators(small_warehouse):
    project = small_warehouse
    result = run()
    assert result.success, failure_messages(result)
    for name in (EXCEL_NAME, HTML_NAME):
        assert (project / "reports" / name).stat().st_size > 10_000
    assert sorted(p.name for p in (project / "reports").iterdir()) == sorted([EXCEL_NAME, HTML_NAME])
    checks = result.get_asset_check_evaluations()
    assert {c.check_name for c in checks} == {reports.EXCEL_CHECK, reports.HTML_CHECK}
    assert all(c.passed for c in checks)
    html_meta = result.asset_materializations_for_node("out_rapport_html")[0].metadata
    assert html_meta["maps"].value == 3 and html_meta["communes_without_outline"].value == []
    excel_meta = result.asset_materializations_for_node("out_rapport_excel")[0].metadata
    assert excel_meta["sheets"].value == 1 + 3 + 6 + 1
    assert excel_meta["path"].value == f"reports/{EXCEL_NAME}"

    # the confidential tables beside published.indicators never reach a report
    page = (project / "reports" / HTML_NAME).read_text(encoding="utf-8")
    assert not any(s in page for s in sentinel_texts())
    wb = openpyxl.load_workbook(project / "reports" / EXCEL_NAME)
    assert SENTINEL not in {c.value for ws in wb.worksheets for row in ws.iter_rows() for c in row}

    # metadata and logs: counts, paths, codes and hashes; no name, no figure
    published = full_published()
    published = published[published["indicator"].isin(SMALL_SET)]
    text = " ".join(
        str(m.metadata) for key in ("out_rapport_excel", "out_rapport_html")
        for m in result.asset_materializations_for_node(key)
    ) + " ".join(str(e.message) for e in result.all_events)
    fractional = [v for v in published["value"].dropna() if not float(v).is_integer()]
    assert fractional and not any(repr(v) in text or f"{v:.1f}".replace(".", ",") in text for v in fractional)
    assert not any(name in text for name in set(published.loc[published["level"] == "commune", "zone_name"]))


@pytest.mark.integration
def test_guard_checks_block_on_a_tampered_or_stale_report(small_warehouse):
    project = small_warehouse
    instance = dg.DagsterInstance.ephemeral()
    assert run(instance=instance).success
    # tamper: a masked cell of the workbook gets a number, a figure of the page changes
    path = project / "reports" / EXCEL_NAME
    wb = openpyxl.load_workbook(path)
    ws = wb["Naissances"]
    cell = next(c for row in ws.iter_rows(min_row=7) for c in row if c.value == "s")
    cell.value = 3
    wb.save(path)
    page = project / "reports" / HTML_NAME
    text = page.read_text(encoding="utf-8")
    page.write_text(re.sub(r'data-valeur="[^"]+"', 'data-valeur="1e9"', text, count=1), encoding="utf-8")

    result = run(selection=dg.AssetSelection.checks(*reports.report_checks), instance=instance)
    assert not result.success
    evaluations = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not evaluations[reports.EXCEL_CHECK].passed and not evaluations[reports.HTML_CHECK].passed
    problems = evaluations[reports.EXCEL_CHECK].metadata["first_problems"].value
    assert any(f"Naissances!{cell.coordinate}" in p and "masked cell holds a number" in p for p in problems)
    assert any("value differs" in p for p in evaluations[reports.HTML_CHECK].metadata["first_problems"].value)

    # rebuilt: the reports pass again; then published.indicators changes: the old reports are stale
    assert run(instance=instance).success
    frame = full_published(seed=8)
    write_warehouse(project / "warehouse" / "warehouse.duckdb", frame[frame["indicator"].isin(SMALL_SET)])
    stale = run(selection=dg.AssetSelection.checks(*reports.report_checks), instance=instance)
    assert not stale.success
    assert not any(c.passed for c in stale.get_asset_check_evaluations())


def test_a_report_failing_its_guard_never_replaces_the_last_good_one(small_warehouse, monkeypatch):
    project = small_warehouse
    assert run(selection=["out_rapport_excel"]).success
    good = (project / "reports" / EXCEL_NAME).read_bytes()
    original = reports.write_workbook

    def faulty(context, path):  # a bug that would show a masked figure
        stats = original(context, path)
        wb = openpyxl.load_workbook(path)
        ws = wb["Naissances"]
        next(c for row in ws.iter_rows(min_row=7) for c in row if c.value == "s").value = 2
        wb.save(path)
        return stats

    monkeypatch.setattr(reports, "write_workbook", faulty)
    result = run(selection=["out_rapport_excel"])
    assert not result.success
    assert "masked cell holds a number" in failure_messages(result)
    assert (project / "reports" / EXCEL_NAME).read_bytes() == good
    assert sorted(p.name for p in (project / "reports").iterdir()) == [EXCEL_NAME]


def test_reports_fail_clearly_without_a_usable_published_table(project):
    result = run(selection=["out_rapport_excel"])
    assert not result.success and "does not exist" in failure_messages(result)
    db = project / "warehouse" / "warehouse.duckdb"
    import duckdb

    duckdb.connect(str(db)).close()
    result = run(selection=["out_rapport_html"])
    assert not result.success and "materialize out_indicators first" in failure_messages(result)
    leaking = tiny_published()
    leaking.loc[1, "value"] = 3.0  # a masked figure with its value: the reports refuse the table
    write_warehouse(db, leaking)
    result = run(selection=["out_rapport_excel"])
    message = failure_messages(result)
    assert not result.success and "masked or not_available row(s) carry a value" in message
    assert "3.0" not in message
    assert not list((project / "reports").iterdir())


def test_html_report_without_geometry_file_still_builds(project):
    write_warehouse(project / "warehouse" / "warehouse.duckdb", tiny_published())
    config = project / "config" / "report.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(re.sub(r"(?m)^  path: .*$", "  path: geo/absent.geojson", text, count=1), encoding="utf-8")
    result = run()
    assert result.success, failure_messages(result)
    meta = result.asset_materializations_for_node("out_rapport_html")[0].metadata
    assert meta["maps"].value == 0 and "absent" in meta["geometry_problem"].value
    assert "Carte non disponible" in (project / "reports" / HTML_NAME).read_text(encoding="utf-8")
