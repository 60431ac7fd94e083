"""Lineage for compliance: governance on every asset, the classification rules, the
manifest, and no data value in Dagster's storage."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from pipeline.definitions import defs
from pipeline.lineage import CONFIDENTIAL, PUBLIABLE, load_governance

GRAPH = defs.resolve_asset_graph()
KEYS = sorted(GRAPH.get_all_asset_keys(), key=lambda k: k.to_user_string())
GROUPS = {"raw", "staging", "warehouse", "disclosure", "reports"}  # the destruction is an op job, no asset


def downstream(key: dg.AssetKey) -> set[dg.AssetKey]:
    out, todo = set(), [key]
    while todo:
        for child in GRAPH.get(todo.pop()).child_keys:
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


@pytest.mark.parametrize("key", KEYS, ids=lambda k: k.to_user_string())
def test_every_asset_says_who_what_where_and_under_which_rule(key):
    node = GRAPH.get(key)
    assert node.group_name in GROUPS
    assert node.owners == [load_governance().owner]
    assert node.tags["classification"] in (CONFIDENTIAL, PUBLIABLE)
    assert node.tags["convention_articles"].startswith("art-")
    assert node.code_version and len(node.code_version) == 12
    assert node.description and len(node.description) > 30
    assert node.kinds
    assert set(node.tags["source"].split(".")) <= {"CAF", "Cnaf", "INSEE"}


def test_published_assets_reach_only_publishable_assets_downstream():
    published = [k for k in KEYS if GRAPH.get(k).tags["classification"] == PUBLIABLE]
    assert {"out_indicators", "out_rapport_excel", "out_rapport_html", "out_manifeste_conformite"} <= {
        k.to_user_string() for k in published}
    for key in published:
        for child in downstream(key):
            assert GRAPH.get(child).tags["classification"] == PUBLIABLE, (key, child)


def test_every_asset_holding_caf_data_is_tagged_confidential():
    """The ingest assets as their source is declared in the catalog (public open data may be
    `publiable`); everything computed from the sources before the audit, confidential."""
    from pipeline.catalog import load_catalog

    sources = load_catalog().sources
    for key in KEYS:
        node, name = GRAPH.get(key), key.to_user_string()
        if node.group_name in ("raw", "staging"):
            source = sources[name.split("_", 1)[1]]
            assert node.tags["classification"] == source.classification, key
            if source.classification == PUBLIABLE:
                # public data, and nothing confidential computed from it (no indicator reads it)
                assert source.licence and all(GRAPH.get(c).tags["classification"] == PUBLIABLE
                                              for c in node.child_keys), key
        if node.group_name == "warehouse" or name == "core_masking":
            assert node.tags["classification"] == CONFIDENTIAL, key
    assert any(s.classification == CONFIDENTIAL for s in sources.values())


def test_reports_never_depend_directly_on_a_confidential_asset():
    for name in ("out_rapport_excel", "out_rapport_html", "out_manifeste_conformite"):
        for parent in GRAPH.get(dg.AssetKey(name)).parent_keys:
            assert GRAPH.get(parent).tags["classification"] == PUBLIABLE, (name, parent)


def test_table_assets_carry_their_schema_and_column_lineage():
    for key in KEYS:
        name, node = key.to_user_string(), GRAPH.get(key)
        if name.startswith("stg_") or name in ("core_masking", "out_indicators"):
            assert "dagster/column_schema" in node.metadata, name
        if name.startswith("stg_") or name.startswith("core_") or name == "out_indicators":
            lineage = node.metadata["dagster/column_lineage"]
            assert lineage.deps_by_column, name
            for deps in lineage.deps_by_column.values():
                for dep in deps:
                    assert dep.asset_key in node.parent_keys, (name, dep.asset_key)


def test_manifest_traces_every_output_to_ledger_files(built_project):
    from tests.helpers import materialize

    instance = dg.DagsterInstance.ephemeral()
    result = materialize(["out_manifeste_conformite"], None, instance)
    assert result.success
    manifest = json.loads((built_project / "reports" / "manifeste_conformite.json").read_text(encoding="utf-8"))
    ledger = {(f["file_name"], f["sha256"]) for f in manifest["ingest_ledger"]}
    assert {name for name, _ in ledger} == {p.name for p in (built_project / "raw").iterdir() if p.name != "README.md"}
    for chain in manifest["outputs"]:
        assert chain["raw_files"], chain["output"]
        assert {(f["file_name"], f["sha256"]) for f in chain["raw_files"]} <= ledger
        assert "raw_bca" in chain["upstream_assets"]
    assert manifest["disclosure_policy"]["version"] and len(manifest["disclosure_policy"]["sha256"]) == 64
    tables = {t["table"]: t["classification"] for t in manifest["tables_on_disk"]}
    assert tables["published.indicators"] == PUBLIABLE and tables["staging.bca"] == CONFIDENTIAL
    assert manifest["study"]["status"] == "open"
    page = (built_project / "reports" / "manifeste_conformite.md").read_text(encoding="utf-8")
    assert "BCA2017.xlsx" in page and "published.indicators" in page


@pytest.mark.integration
def test_dagster_storage_holds_no_value_of_the_data(project):
    """After a full run on files carrying a sentinel (an extra column, a commune label), no
    byte under DAGSTER_HOME holds it: metadata and logs carry counts, hashes and schemas."""
    import os
    from pathlib import Path

    from pipeline.sample import generate
    from tests.helpers import materialize_all, query

    sentinel = "ZQX-SENTINELLE-8841"
    generate(project / "raw", seed=2022, sentinel=sentinel)
    instance = dg.DagsterInstance.get()  # persistent, under the test's DAGSTER_HOME
    assert not materialize_all(instance)
    # the scan can fail: the sentinel is in the data the run read
    assert query(project, f"SELECT count(*) FROM raw.bca_2017 WHERE \"COMMENTAIRE\" LIKE '%{sentinel}%'")[0][0] == 1
    home = Path(os.environ["DAGSTER_HOME"])
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files)
    hits = [str(p) for p in files if sentinel.encode() in p.read_bytes()]
    assert hits == []


def test_manifest_counts_the_masked_cells_of_the_table_and_shows_the_column_lineage(built_warehouse):
    """The manifest of a full run said "2256 cellules masquées" beside a table holding 1,602: it
    gave the audit's count of every protected value it judged (the masked cells and the hidden
    terms of the rates they touch) as the table's. The column lineage promised to the reviewer
    was in Dagster's metadata only, which the open-source UI does not show."""
    import duckdb

    reports = built_warehouse.parent.parent / "reports"  # what the run wrote, as `make run` does
    manifest = json.loads((reports / "manifeste_conformite.json").read_text(encoding="utf-8"))
    page = (reports / "manifeste_conformite.md").read_text(encoding="utf-8")
    con = duckdb.connect(str(built_warehouse), read_only=True)
    try:
        masked = con.execute("SELECT count(*) FROM published.indicators WHERE status = 'masked'").fetchone()[0]
    finally:
        con.close()
    assert manifest["published_table"]["masked_cells"] == masked
    assert f"dont {masked} cellules masquées" in page
    checked = manifest["audit"]["masked_cells_checked"]
    assert checked and int(checked) != masked  # two counts, each named for what it counts
    assert f"{checked} cellules masquées" not in page and f"{checked} valeurs protégées vérifiées" in page

    lineage = {item["asset"]: item for item in manifest["column_lineage"]}
    assert lineage["out_indicators"]["table"] == "published.indicators"
    assert lineage["out_indicators"]["columns"]["value"] == ["core_masking.value"]
    assert any(d.startswith("raw_bca.") for d in lineage["stg_bca"]["columns"]["value"])
    assert "## Lignage des colonnes" in page and "| `value` | `core_masking.value` |" in page
