"""Wiring: the sample files -> every asset (ingest, warehouse, disclosure) -> the reports.

`built_warehouse` (tests/conftest.py) materializes every registered asset on the sample,
the reports included; here the reports are built again, with the commune map, from the
published.indicators of that run, and compared cell by cell with it.
"""

from __future__ import annotations

import duckdb
import openpyxl
import pytest

from pipeline.defs import reports
from pipeline.reports.context import EXCEL_NAME, HTML_NAME, build_context
from pipeline.reports.excel import HEADER_ROW
from pipeline.reports.texts import sheet_names
from tests.helpers import failure_message, materialize
from tests.test_reports_assets import use_geometry


def _published(db) -> pd.DataFrame:  # noqa: F821
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT * FROM published.indicators").df()
    finally:
        con.close()


def test_sample_to_everything_to_reports(built_warehouse, built_project):
    from pipeline.definitions import defs

    keys = {k.to_user_string() for a in defs.assets for k in getattr(a, "keys", [])}
    if "out_rapport_excel" not in keys:
        pytest.fail("pipeline/definitions.py does not register pipeline.defs.reports")
    # the run of every asset on the sample wrote both reports
    run_reports = built_warehouse.parent.parent / "reports"
    assert (run_reports / EXCEL_NAME).exists() and (run_reports / HTML_NAME).exists()

    project = built_project
    use_geometry(project)
    result = materialize(["out_rapport_excel", "out_rapport_html"])
    assert result.success, failure_message(result)
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {reports.EXCEL_CHECK: True, reports.HTML_CHECK: True}
    assert result.asset_materializations_for_node("out_rapport_html")[0].metadata["maps"].value == 12

    published = _published(project / "warehouse" / "warehouse.duckdb")
    assert (published["status"] == "masked").any()  # the sample does exercise the secret
    context = build_context(published)
    names = sheet_names(context)
    wb = openpyxl.load_workbook(project / "reports" / EXCEL_NAME)
    compared = 0
    for ind in context.reported_indicators:
        ws = wb[names[ind.id]]
        years = {c.value: c.column for c in ws[HEADER_ROW] if isinstance(c.value, int)}
        rows = {ws.cell(row=r, column=1).value: r for r in range(HEADER_ROW + 1, ws.max_row + 1)}
        for rec in published[published["indicator"] == ind.id].itertuples():
            value = ws.cell(row=rows[rec.zone_code], column=years[rec.year]).value
            if rec.status == "published":
                assert value == pytest.approx(rec.value, abs=1e-9), (ind.id, rec.zone_code, rec.year)
            else:
                assert value == {"masked": "s", "not_available": "nd"}[rec.status], (ind.id, rec.zone_code, rec.year)
            compared += 1
    assert compared == len(published)
