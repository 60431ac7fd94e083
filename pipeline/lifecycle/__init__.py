"""The study's lifecycle: the end of the convention (art. 7) and the destruction duty (art. 2).

The convention ends when the study is published; the partner must then destroy the CAF's
data and may keep nothing but its published results. Dagster has no retention feature
(wiping an asset removes event records, never the data), so this package does it, one
module per concern:

- `rules`: what is destroyed, kept or reduced (rules, not lists of tables);
- `gate`: the refusals (no ingest for a closed or destroyed study, no destruction unless
  the study is closed, published and named again) and where the lifecycle state lives;
- `shredder`: files fingerprinted, overwritten, flushed, deleted;
- `scanner`: the byte-level residue scan for sentinel values;
- `warehouse`: the DuckDB inventory, derived sentinels, the copy of what is kept;
- `dagster_storage`: the one adapter to Dagster's storage (SQLite or PostgreSQL);
- `journal`: the destruction's progress on disk, so that a killed run resumes;
- `destruction`: the steps;
- `certificate`: the procès-verbal (JSON, and HTML from `templates/certificate.html.j2`).

Names are re-exported here lazily: `from pipeline.lifecycle import assert_ingest_allowed`
loads the small `gate` module only. Nothing here writes a value of the data anywhere:
paths, table names, sizes, hashes and counts only.
"""

from __future__ import annotations

import importlib
from typing import Any

from pipeline.study import Study, StudyError, load_study, set_study_status  # noqa: F401 (re-exported)

_EXPORTS = {
    "rules": ("LIFECYCLE_GROUP", "CLASSIFICATION_TAG", "CONFIDENTIAL", "DESTROYED_SCHEMAS", "KEPT_SCHEMAS",
              "REDUCED_TABLES", "classify_table", "purged_asset_keys", "touched_asset_keys"),
    "gate": ("DestructionError", "IngestRefused", "current_study_id", "lifecycle_dir", "journal_path", "marker_path",
             "certificate_paths", "destruction_record", "ingest_refusal", "assert_ingest_allowed",
             "AUTOMATED_RUN_TAGS", "destruction_problems", "decode_sentinels", "encode_sentinel"),
    "shredder": ("sha256_file", "overwrite_file", "shred_file", "shred_tree"),
    "scanner": ("Sentinel", "ScanReport", "ENCODINGS", "sentinel_patterns", "residue_scan"),
    "warehouse": ("warehouse_inventory", "derive_sentinels", "scan_duckdb_tables", "table_digest"),
    "dagster_storage": ("DagsterStorage",),
    "journal": ("Journal",),
    "destruction": ("Destruction", "Outcome"),
    "certificate": ("build_certificate", "render_certificate_html"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE) + ["Study", "StudyError", "load_study", "set_study_status"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
