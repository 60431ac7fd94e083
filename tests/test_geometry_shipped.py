"""The commune outlines ship with the project: a fresh clone's report has its maps."""

from __future__ import annotations

import json

import yaml

from pipeline.reports.geo import load_geometry, territory_outlines
from pipeline.settings import PACKAGE_ROOT
from pipeline.territory import load_territory

SHIPPED = PACKAGE_ROOT / "config" / "geo" / "communes-cabbalr.geojson"


def test_report_config_points_inside_the_project_at_the_shipped_file():
    path = yaml.safe_load((PACKAGE_ROOT / "config" / "report.yaml").read_text(encoding="utf-8"))["geometry"]["path"]
    resolved = (PACKAGE_ROOT / path).resolve()
    assert resolved == SHIPPED.resolve() and PACKAGE_ROOT.resolve() in resolved.parents
    assert (SHIPPED.parent / "PROVENANCE.md").exists()
    assert "Licence Ouverte" in (SHIPPED.parent / "PROVENANCE.md").read_text(encoding="utf-8")


def test_shipped_outlines_are_the_territorys_communes_only_and_small():
    territory = load_territory()
    doc = json.loads(SHIPPED.read_text(encoding="utf-8"))
    codes = [f["properties"]["code"] for f in doc["features"]]
    assert sorted(codes) == sorted(territory.commune_codes) and len(codes) == 100
    assert SHIPPED.stat().st_size < 300_000
    geometry = load_geometry(SHIPPED, "code", territory)
    assert geometry.available and geometry.missing == []


def test_cutting_the_shipped_outlines_again_gives_them_unchanged():
    """territory_outlines (how the file was cut from the department's) keeps every commune
    of the referential, in order, coordinates untouched."""
    text = territory_outlines(SHIPPED, "code", "nom", load_territory())
    assert text == SHIPPED.read_text(encoding="utf-8")
