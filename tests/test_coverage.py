"""A year whose files never came, and a file the catalog does not know, as a user meets them
with `make run` on the sample (issue 26): the run's summary and the reports say which years and
files the study covers and which are missing; the charts draw only the years covered; the
reports' "Date des données" is the data's (years, files received), not the run's time."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET

import openpyxl

from pipeline.__main__ import main
from pipeline.reports.context import EXCEL_NAME, HTML_NAME
from tests.test_lifecycle import persistent_instance

SVG = "{http://www.w3.org/2000/svg}"


def test_missing_year_and_unknown_file_are_said_by_the_run_and_the_reports(sample_project, capsys):
    raw = sample_project / "raw"
    for name in ("BCA2021.xlsx", "BCECPAJ21.xlsx"):  # the CAF never sent 2021
        (raw / name).unlink()
    shutil.copy2(raw / "BCA2020.xlsx", raw / "BCA2022.xlsx")  # a year the catalog does not declare
    persistent_instance()

    assert main(["run"]) == 0
    out = capsys.readouterr().out
    summary = out[out.index("years covered"):]
    assert "bca: 2017-2020; MISSING 2021 (expected BCA2021.xlsx)" in summary
    assert "bcecpaj: 2017-2020; MISSING 2021 (expected BCECPAJ21.xlsx)" in summary
    assert "naissances: 2017-2020\n" in summary and "MISSING" not in summary.split("naissances")[1].split("\n")[0]
    assert "files of raw/ ignored (1)" in summary and "BCA2022.xlsx: looks like a bca table" in summary
    assert "rows left out by the ingest" in summary and "warnings (" in summary

    page = (sample_project / "reports" / HTML_NAME).read_text(encoding="utf-8")
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "– 2017 à 2020" in text and "2017 à 2021" not in text
    assert "Période couverte 2017 à 2020 ; sans données pour 2021 (BCECPAJ21.xlsx, BCA2021.xlsx)" in text
    date = text.split("Date des données ")[1].split(" Document produit le")[0]
    assert date.startswith("années 2017 à 2020, fichiers reçus le ") and " h " not in date
    assert "Années sans données : 2021 (BCA2021.xlsx)" in text
    trends = re.findall(r'<figure[^>]*data-graphique="tendance".*?(<svg.*?</svg>)', page, flags=re.S)
    ticks = [["".join(t.itertext()) for t in ET.fromstring(svg).iter(f"{SVG}text")] for svg in trends]
    assert trends and all("2021" not in chart for chart in ticks)  # no empty 2021 panel
    assert sum("2020" in chart for chart in ticks) >= 8  # the CAF's indicators, drawn to 2020

    workbook = openpyxl.load_workbook(sample_project / "reports" / EXCEL_NAME, read_only=True)
    cover = {row[0]: row[1] for row in workbook.worksheets[0].iter_rows(values_only=True) if row and row[0]}
    assert cover["Période couverte"].startswith("2017 à 2020 ; sans données pour 2021")
    assert cover["Date des données"].startswith("années 2017 à 2020, fichiers reçus le ")
