"""One fingerprint of the published table: asset metadata, reports, manifest, certificate."""

from __future__ import annotations

import json

import dagster as dg
import duckdb
import pandas as pd

from pipeline.fingerprint import PUBLISHED_TABLE, frame_fingerprint, table_fingerprint
from pipeline.lifecycle.warehouse import table_digest as certificate_digest
from pipeline.reports.context import read_published
from tests.helpers import materialize


def test_fingerprint_ignores_row_order_and_sees_any_change():
    frame = pd.DataFrame({"a": ["x", "y", None], "b": [1.5, float("nan"), 3.0]})
    shuffled = frame.iloc[[2, 0, 1]].reset_index(drop=True)
    assert frame_fingerprint(frame) == frame_fingerprint(shuffled)
    changed = frame.copy()
    changed.loc[0, "b"] = 1.25
    assert frame_fingerprint(changed) != frame_fingerprint(frame)


def test_one_fingerprint_everywhere(built_project):
    """The published table's fingerprint is the same in out_indicators' metadata, the reports'
    "Version des données", the compliance manifest and the certificate's table digest."""
    db = built_project / "warehouse" / "warehouse.duckdb"
    con = duckdb.connect(str(db), read_only=True)
    try:
        expected = table_fingerprint(con, PUBLISHED_TABLE)
        assert frame_fingerprint(read_published(con)) == expected  # what the reports hash
        assert certificate_digest(con, PUBLISHED_TABLE)[1] == expected  # what the certificate lists
    finally:
        con.close()
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(["out_indicators", "out_rapport_html", "out_manifeste_conformite"], instance=instance)
    assert result.success
    meta = instance.get_latest_materialization_event(dg.AssetKey("out_indicators")).asset_materialization.metadata
    assert meta["fingerprint"].value == expected
    html_meta = (instance.get_latest_materialization_event(dg.AssetKey("out_rapport_html"))
                 .asset_materialization.metadata)
    assert html_meta["data_version"].value == expected[:12]
    page = (built_project / "reports").glob("*.html")
    assert any(expected[:12] in p.read_text(encoding="utf-8") for p in page)
    manifest = json.loads((built_project / "reports" / "manifeste_conformite.json").read_text(encoding="utf-8"))
    assert manifest["published_table"]["fingerprint"] == expected
