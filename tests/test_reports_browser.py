"""The HTML report opened as a committee member would: headless Chromium (Debian's
`chromium` and `chromium-driver`, installed by .ci/run; never a downloaded browser),
driven by Selenium.

The page must open from the file with no console error and no network request, show
every chart and every map with its source line, and a screenshot is saved in the test's
temporary folder. Without Chromium the test fails: it is never skipped.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.reports.context import build_context
from pipeline.reports.html import write_html
from tests.test_reports import GENERATED, geometry_for, repo_paths
from tests.test_reports_support import full_published

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _driver():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install chromium chromium-driver (done by .ci/run)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--lang=fr-FR", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[Path, int]:
    tmp = tmp_path_factory.mktemp("browser")
    context = build_context(full_published(), paths=repo_paths(tmp), generated_at=GENERATED)
    geometry = geometry_for(context, tmp)
    path = tmp / "rapport_petite_enfance.html"
    write_html(context, geometry, path)
    return path, len(context.reported_indicators)


def test_report_opens_offline_and_shows_every_chart(page, tmp_path):
    path, n_indicators = page
    driver = _driver()
    try:
        driver.get(path.as_uri())
        assert driver.execute_script("return document.readyState") == "complete"
        assert "Diagnostic sur le métier d'assistant maternel" in driver.title

        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert not errors, errors
        # nothing requested beyond the file itself
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0

        figures = driver.find_elements("css selector", "figure.graphique")
        assert len(figures) == 3 * n_indicators
        kinds = {"tendance": 0, "communes": 0, "carte": 0}
        for figure in figures:
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", figure)
            kind = figure.get_attribute("data-graphique")
            kinds[kind] += 1
            svg = figure.find_element("css selector", ".image svg")
            size = svg.size
            assert svg.is_displayed() and size["width"] > 600 and size["height"] > 200, (
                figure.get_attribute("id"), size)
            source = figure.find_element("css selector", "p.source")
            assert source.is_displayed() and "CAF du Pas-de-Calais" in source.text
            if kind == "carte":
                assert len(svg.find_elements("css selector", "path")) >= 100  # a patch per commune
        assert kinds == {"tendance": n_indicators, "communes": n_indicators, "carte": n_indicators}

        # the figures behind a chart are one click away, masked ones as their symbol
        details = figures[0].find_element("css selector", "details")
        details.find_element("css selector", "summary").click()
        table = details.find_element("css selector", "table.donnees")
        assert table.is_displayed() and len(table.find_elements("css selector", "tr")) == 1 + 1 + 6

        header = driver.find_element("css selector", "header.bandeau")
        assert "CABBALR – CAF du Pas-de-Calais" in header.text and "Source : CAF du Pas-de-Calais" in header.text

        driver.execute_script("window.scrollTo(0, 0)")
        shot = tmp_path / "rapport_haut.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        first_map = next(f for f in figures if f.get_attribute("data-graphique") == "carte")
        driver.execute_script("arguments[0].scrollIntoView()", first_map)
        map_shot = tmp_path / "carte.png"
        assert first_map.screenshot(str(map_shot)) and map_shot.stat().st_size > 10_000
        assert not [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    finally:
        driver.quit()


def test_chromium_comes_from_debian_not_a_download():
    """The browser the tests drive is the system's (the workplace cannot download one)."""
    assert shutil.which("chromium") == str(CHROMIUM) or CHROMIUM.exists(), "apt-get install chromium"
    assert CHROMEDRIVER.exists(), "apt-get install chromium-driver"
