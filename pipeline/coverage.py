"""Which years and files the study covers, and which never came.

A year whose files never arrived is still in the indicators' declared years
(config/indicators.yaml): the published table holds it as `not_available` everywhere, and a
report that read only the declared years said "2017 à 2021" and drew empty 2021 charts. The
study's coverage is what the ingest ledger (`lineage.ingest_ledger`: names, years, dates, sizes
and hashes of the files received; never a figure) says was ingested, against the years the
indicators need from each source (the catalog names the file expected for each).

`make run` prints it (`pipeline.run_summary`), the reports state it and draw only the years
covered (`pipeline.reports`), the manifest lists the ledger it is read from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb

from pipeline.catalog import Catalog, CatalogError
from pipeline.indicators import Indicator, IndicatorSet
from pipeline.tables import LEDGER_TABLE


def ledger(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The ingest ledger's files; after the destruction it is reduced (no date received: None)."""
    schema, table = LEDGER_TABLE.split(".")
    present = {c for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [schema, table]).fetchall()}
    if not present:
        return []
    received = "CAST(received_at AS VARCHAR)" if "received_at" in present else "NULL"
    rows = con.execute(
        f"SELECT source, year, file_name, sha256, size_bytes, {received} FROM {LEDGER_TABLE} ORDER BY source, year"
    ).fetchall()
    return [dict(zip(["source", "year", "file_name", "sha256", "size_bytes", "received_at"], r)) for r in rows]


@dataclass(frozen=True)
class Coverage:
    """The years each source was needed for, and those whose files were ingested."""

    needed: dict[str, tuple[int, ...]]  # source -> the years the indicators need from it
    received: dict[str, dict[int, str]]  # source -> year -> the file it was read from
    # sources read below the commune only (IRIS): optional, a commune without them has no IRIS part
    optional: dict[str, tuple[int, ...]] = field(default_factory=dict)
    expected_file: dict[tuple[str, int], str] = field(default_factory=dict)  # the catalog's name for it
    received_on: tuple[dt.date, dt.date] | None = None  # first and last day a file was received

    def years(self, source: str) -> list[int]:
        return sorted(self.received.get(source, {}))

    def missing(self, source: str) -> list[int]:
        wanted = self.needed.get(source) or self.optional.get(source, ())
        return sorted(set(wanted) - set(self.received.get(source, {})))

    def covered(self, indicator: Indicator) -> list[int]:
        """The indicator's declared years whose file of its source came."""
        return [y for y in indicator.years if y in self.received.get(indicator.source, {})]

    def missing_of(self, indicator: Indicator) -> list[tuple[int, str]]:
        """(year, the file expected) of each declared year whose file never came."""
        got = self.received.get(indicator.source, {})
        return [(y, self.expected_file.get((indicator.source, y), "?")) for y in indicator.years if y not in got]

    @property
    def complete(self) -> bool:
        return not any(self.missing(s) for s in self.needed)


def needed_years(indicators: IndicatorSet) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """The years each source is read for: its indicators' years and, for the allocataires'
    source, every year of any indicator; apart, the sources read below the commune only."""
    needed: dict[str, set[int]] = {}
    below: dict[str, set[int]] = {}
    for indicator in indicators.indicators:
        needed.setdefault(indicator.source, set()).update(indicator.years)
        for _level, source, _measure, years in indicator.below_commune:
            below.setdefault(source, set()).update(years)
    needed.setdefault(indicators.allocataires_source, set()).update(indicators.years)
    main = {s: tuple(sorted(y)) for s, y in needed.items() if y}
    return main, {s: tuple(sorted(y)) for s, y in below.items() if y and s not in main}


def coverage(files: list[dict], indicators: IndicatorSet, catalog: Catalog | None) -> Coverage:
    """The coverage from the ledger's rows (`ledger`)."""
    needed, optional = needed_years(indicators)
    received: dict[str, dict[int, str]] = {}
    for row in files:
        received.setdefault(str(row["source"]), {})[int(row["year"])] = str(row["file_name"])
    expected = {}
    for source, years in {**needed, **optional}.items():
        for year in years:
            try:
                forms = catalog.forms(source, year) if catalog is not None else []
            except CatalogError:
                forms = []  # a year the catalog does not declare: no file name to give
            expected[(source, year)] = " ou ".join(dict.fromkeys(v.file for v in forms)) or "?"
    days = sorted(dt.date.fromisoformat(str(r["received_at"])[:10]) for r in files if r.get("received_at"))
    return Coverage(needed, received, optional, expected, (days[0], days[-1]) if days else None)


def read_coverage(con: duckdb.DuckDBPyConnection, indicators: IndicatorSet, catalog: Catalog | None) -> Coverage:
    return coverage(ledger(con), indicators, catalog)
