"""The documents state the policy they were masked under (issue 24): the threshold, the
minimum of allocataires below the commune and the rounding of rates come from
config/disclosure.yaml, never from the report code. A policy with other numbers gives
reports that state those numbers, and show rates with its decimals."""

from __future__ import annotations

import html
import re

import openpyxl
import pytest

from pipeline.disclosure.policy import load_policy, parse_policy
from pipeline.reports.context import build_context
from pipeline.reports.excel import HEADER_ROW, write_workbook
from pipeline.reports.geo import load_geometry
from pipeline.reports.guard import check_html, check_workbook
from pipeline.reports.html import write_html
from pipeline.reports.texts import sheet_names
from pipeline.settings import PACKAGE_ROOT
from tests.test_reports import repo_paths
from tests.test_reports_support import full_published

POLICY = PACKAGE_ROOT / "config" / "disclosure.yaml"
SET = ("am_taux_activite", "naissances", "taux_couverture_global")


def _policy(**numbers):
    text = POLICY.read_text(encoding="utf-8")
    for key, value in numbers.items():
        text, n = re.subn(rf"(?m)^{key}: *\d+", f"{key}: {value}", text)
        assert n == 1, key
    return parse_policy(text)


def _reports(tmp_path, policy):
    frame = full_published()
    frame = frame[frame["indicator"].isin(SET)].copy()
    # the published table rounds rates as its policy says
    rates = frame["indicator"].str.startswith(("taux", "am_taux"))
    frame.loc[rates, "value"] = frame.loc[rates, "value"].round(policy.rate_decimals)
    context = build_context(frame, paths=repo_paths(tmp_path), policy=policy)
    xlsx, page = tmp_path / "r.xlsx", tmp_path / "r.html"
    write_workbook(context, xlsx)
    write_html(context, load_geometry(None, "code", context.territory), page)
    assert check_workbook(xlsx, context).passed
    assert check_html(page, context, maps_expected=False).passed
    texts = [str(c.value) for ws in openpyxl.load_workbook(xlsx) for row in ws.iter_rows() for c in row
             if isinstance(c.value, str)]
    return context, xlsx, "\n".join(texts), page.read_text(encoding="utf-8")


@pytest.mark.parametrize("numbers", [{}, {"threshold": 10, "rate_decimals": 2, "minimum_allocataires": 150},
                                     {"threshold": 7, "rate_decimals": 0}])
def test_the_reports_state_the_policy_they_were_masked_under(tmp_path, numbers):
    policy = _policy(**numbers) if numbers else load_policy(path=POLICY)
    context, xlsx, workbook, page = _reports(tmp_path, policy)
    for text in (workbook, html.unescape(page)):
        assert f"moins de {policy.threshold} allocataires" in text
        assert f"moins de {policy.minimum_allocataires} allocataires" in text
        others = {int(n) for n in re.findall(r"moins de (\d+) allocataires", text)}
        assert others == {policy.threshold, policy.minimum_allocataires}
        digits = policy.rate_decimals
        rounding = "l'unité" if digits == 0 else f"{digits} décimale" + ("s" if digits > 1 else "")
        assert f"Les taux sont diffusés arrondis à {rounding}" in text
    # the rate's cells carry the policy's decimals, the count's none
    wb = openpyxl.load_workbook(xlsx)
    names = sheet_names(context)
    rate = wb[names["am_taux_activite"]].cell(row=HEADER_ROW + 1, column=5)
    count = wb[names["naissances"]].cell(row=HEADER_ROW + 1, column=5)
    assert rate.number_format == ("#,##0" if policy.rate_decimals == 0 else "#,##0." + "0" * policy.rate_decimals)
    assert count.number_format == "#,##0"
    # the page writes the agglomeration's rate with as many decimals
    shown = re.findall(r"<td[^>]*>(\d+(?:,\d+)?)\s*</td>", page)
    assert shown, "no figure found on the page"
    with_decimals = {len(v.split(",")[1]) if "," in v else 0 for v in shown}
    assert policy.rate_decimals in with_decimals
