"""How each table of the warehouse is classified, and what becomes of it when the study
closes: one answer, derived from the declarations in `config/`.

A source's own tables (`raw.<source>_<year>`, `staging.<source>`) take the classification
its entry of `config/catalog.yaml` declares (`classification`, `articles`, and a `licence`
for public data); the tables computed from the sources (`confidential.*`) are confidential;
the published results and the ingest ledger are publishable. The lineage tags
(`pipeline.lineage`), the compliance manifest (`pipeline.compliance`) and the destruction's
inventory (`pipeline.lifecycle.rules`) all ask this module, so that a source declared
public in the catalog is public everywhere, and a confidential one destroyed everywhere.

A table no rule recognises is confidential: nothing is kept or called public by default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.catalog import (
    CLASSIFICATIONS,
    CONFIDENTIAL,
    PUBLIABLE,
    Catalog,
    CatalogError,
    Source,
    load_catalog,
)

__all__ = ["CLASSIFICATIONS", "CONFIDENTIAL", "PUBLIABLE", "TableClass", "classify", "load_catalog_or_none",
           "source_of_table",
           "table_classification"]

# Where the tables of each stage are written.
SOURCE_SCHEMAS = ("raw", "staging")  # one source's own tables
COMPUTED_SCHEMAS = ("confidential",)  # computed from several sources before masking
PUBLIC_SCHEMAS = ("published", "lineage")  # masked results; the ingest ledger (names and hashes)


@dataclass(frozen=True)
class TableClass:
    classification: str
    source: str | None = None  # the catalog's source whose own table it is
    articles: tuple[str, ...] = ()
    licence: str | None = None
    producer: str | None = None

    @property
    def confidential(self) -> bool:
        return self.classification != PUBLIABLE


def source_of_table(catalog: Catalog, schema: str, table: str) -> Source | None:
    """The source whose own table `schema.table` is (raw.<source>_<year>, staging.<source>)."""
    if schema == "staging":
        return catalog.sources.get(table)
    if schema == "raw":
        match = re.fullmatch(r"(.+)_(\d{4})", table)
        if match:
            return catalog.sources.get(match.group(1))
    return None


def load_catalog_or_none() -> Catalog | None:
    try:
        return load_catalog()
    except CatalogError:
        return None  # an unreadable catalog classifies every source table confidential


def classify(schema: str, table: str, catalog: Catalog | None = None) -> TableClass:
    """The classification of one table of the warehouse (see the module docstring)."""
    if schema in SOURCE_SCHEMAS:
        catalog = catalog if catalog is not None else load_catalog_or_none()
        source = source_of_table(catalog, schema, table) if catalog else None
        if source is None:
            return TableClass(CONFIDENTIAL)
        return TableClass(source.classification, source.id, source.articles, source.licence, source.producer)
    if schema in PUBLIC_SCHEMAS:
        return TableClass(PUBLIABLE)
    return TableClass(CONFIDENTIAL)


def table_classification(schema: str, table: str, catalog: Catalog | None = None) -> str:
    return classify(schema, table, catalog).classification
