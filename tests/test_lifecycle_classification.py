"""A source's classification is declared once, in its catalog entry: its tables are tagged,
listed in the compliance manifest and destroyed (or kept) at the end of the study
accordingly. Proved with two sources added to a temporary project's config/ only: one
received under the convention, one of public open data."""

from __future__ import annotations

import json
import uuid

import dagster as dg
import duckdb
import pytest

from pipeline import lifecycle
from pipeline.catalog import CatalogError, load_catalog
from pipeline.classification import CONFIDENTIAL, PUBLIABLE, classify
from pipeline.fingerprint import table_fingerprint
from pipeline.lifecycle import load_study
from tests.helpers import failure_message, query
from tests.test_lifecycle import (
    close_study,
    destroy,
    files_holding,
    persistent_instance,
)

TWO_SOURCES = """
  permanences_rpe:
    title: "Permanences des relais (CAF, ajoutée par configuration)"
    producer: CAF
    classification: confidentiel-convention-caf
    articles: [art-2, art-4]
    file_regex: '(?i)^permanences_rpe_\\d{4}\\.csv$'
    blank_means: secret_at_source
    measures:
      permanences: {label: "Nombre de permanences"}
    columns:
      Code commune: code_zone
      Nb permanences: permanences
    vintages:
      2020: {file: permanences_rpe_2020.csv}

  equipements_publics:
    title: "Équipements d'accueil du jeune enfant (Insee, base permanente des équipements)"
    producer: INSEE
    classification: publiable
    licence: "Licence Ouverte / Open Licence 2.0 (Etalab)"
    file_regex: '(?i)^bpe_\\d{4}\\.csv$'
    blank_means: missing
    measures:
      creches: {label: "Nombre d'établissements d'accueil du jeune enfant"}
    columns:
      DEPCOM: code_zone
      NB_D502: creches
    vintages:
      2020: {file: bpe_2020.csv}
"""


@pytest.fixture
def two_sources(project):
    catalog = project / "config" / "catalog.yaml"
    catalog.write_text(catalog.read_text(encoding="utf-8") + TWO_SOURCES, encoding="utf-8")
    return project


def test_the_catalog_entry_classifies_the_ingest_assets(two_sources):
    from pipeline.defs.ingest import build_ingest_assets
    from pipeline.lineage import apply_governance

    catalog = load_catalog()
    assets = [a for sid in ("permanences_rpe", "equipements_publics") for a in build_ingest_assets(catalog.source(sid))]
    from pipeline.resources import ProjectResource, WarehouseResource

    defs = dg.Definitions(assets=assets, resources={"project": ProjectResource(), "warehouse": WarehouseResource()})
    graph = apply_governance(defs).resolve_asset_graph()
    tags = {key.to_user_string(): graph.get(key).tags for key in graph.get_all_asset_keys()}
    for name in ("raw_permanences_rpe", "stg_permanences_rpe"):
        assert tags[name]["classification"] == CONFIDENTIAL and tags[name]["convention_articles"] == "art-2.art-4"
    for name in ("raw_equipements_publics", "stg_equipements_publics"):
        assert tags[name]["classification"] == PUBLIABLE and tags[name]["source"] == "INSEE"
    purged = lifecycle.purged_asset_keys(graph)
    assert {k.to_user_string() for k in purged} == {"raw_permanences_rpe", "stg_permanences_rpe"}


def test_tables_are_listed_and_destroyed_as_their_source_is_declared(two_sources):
    from pipeline.compliance import tables_on_disk

    project = two_sources
    instance = persistent_instance()
    study = load_study()
    sentinel = "PERM" + uuid.uuid4().hex[:12].upper()
    con = duckdb.connect(str(project / "warehouse" / "warehouse.duckdb"))
    con.execute("CREATE SCHEMA raw; CREATE SCHEMA staging; CREATE SCHEMA published; CREATE SCHEMA confidential")
    con.execute(f"CREATE TABLE raw.permanences_rpe_2020 AS SELECT '62119' AS \"Code commune\", '{sentinel}' AS note")
    con.execute("CREATE TABLE staging.permanences_rpe AS SELECT 2020 AS year, '62119' AS zone_code, 3.0 AS value")
    con.execute("CREATE TABLE raw.equipements_publics_2020 AS SELECT '62119' AS DEPCOM, 'Annezin crèche' AS nom")
    con.execute("CREATE TABLE staging.equipements_publics AS SELECT 2020 AS year, '62119' AS zone_code, 2.0 AS value")
    con.execute("CREATE TABLE raw.inconnue_2020 AS SELECT 'x' AS a")  # no source of the catalog: confidential
    con.execute("CREATE TABLE published.indicators AS SELECT '62119' AS zone_code, 1.0 AS value")
    listed = {t["table"]: (t["classification"], t["at_study_end"]) for t in tables_on_disk(con)}
    published_print = table_fingerprint(con, "published.indicators")
    con.close()
    assert listed == {
        "raw.permanences_rpe_2020": (CONFIDENTIAL, "destroy"),
        "staging.permanences_rpe": (CONFIDENTIAL, "destroy"),
        "raw.equipements_publics_2020": (PUBLIABLE, "keep"),
        "staging.equipements_publics": (PUBLIABLE, "keep"),
        "raw.inconnue_2020": (CONFIDENTIAL, "destroy"),
        "published.indicators": (PUBLIABLE, "keep"),
    }

    close_study()
    result = destroy(instance, study.study_id, [sentinel])
    assert result.success, failure_message(result)
    cert = json.loads(lifecycle.certificate_paths(study.study_id)[1].read_text(encoding="utf-8"))
    assert {t["table"] for t in cert["detruit"]["tables"]} == {
        "raw.permanences_rpe_2020", "staging.permanences_rpe", "raw.inconnue_2020"}
    kept = {t["table"]: t["reason"] for t in cert["conserve"]["tables"]}
    assert set(kept) == {"raw.equipements_publics_2020", "staging.equipements_publics", "published.indicators"}
    assert "Licence Ouverte" in kept["staging.equipements_publics"]
    # the certificate lists the published table under the one fingerprint (pipeline.fingerprint)
    published = next(t for t in cert["conserve"]["tables"] if t["table"] == "published.indicators")
    assert published["sha256"] == published["sha256_after"] == published_print
    html = lifecycle.certificate_paths(study.study_id)[0].read_text(encoding="utf-8")
    assert published_print in html
    assert query(project, "SELECT value FROM staging.equipements_publics") == [(2.0,)]
    assert files_holding(project, sentinel) == []


def test_a_source_must_say_how_it_is_classified(project):
    catalog = project / "config" / "catalog.yaml"
    text = catalog.read_text(encoding="utf-8")
    catalog.write_text(text + TWO_SOURCES.replace("    classification: publiable\n", ""), encoding="utf-8")
    with pytest.raises(CatalogError, match=r"equipements_publics.classification is required \(one of: confidentiel"):
        load_catalog()
    catalog.write_text(text + TWO_SOURCES.replace('    licence: "Licence Ouverte / Open Licence 2.0 (Etalab)"\n', ""),
                       encoding="utf-8")
    with pytest.raises(CatalogError, match="names the `licence`"):
        load_catalog()


def test_an_unreadable_catalog_classifies_every_source_table_confidential(project):
    (project / "config" / "catalog.yaml").write_text("sources: [", encoding="utf-8")
    assert classify("staging", "bca").classification == CONFIDENTIAL
    assert lifecycle.classify_table("raw", "bca_2017")[0] == "destroy"
