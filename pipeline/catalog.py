"""The source catalog: which file, sheet, header row and column map hold each table
and year of the convention's annex.

This module only reads and resolves `config/catalog.yaml`; it never opens a data file.
Reading files is `pipeline.extract`'s job.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

from pipeline.settings import Paths, project_paths


class CatalogError(ValueError):
    pass


@dataclass(frozen=True)
class Vintage:
    """One year of one source table: where it is and how its columns are named."""

    source: str
    year: int
    file: str
    sheet: str | None
    header_row: int
    columns: dict[str, str]  # source label -> canonical name
    year_column: str | None = None
    bundle_sheet: str | None = None
    encoding: str | None = None

    @property
    def label_of(self) -> dict[str, str]:
        """canonical name -> source label."""
        return {canonical: label for label, canonical in self.columns.items()}

    def matches_file(self, name: str) -> bool:
        return fnmatch.fnmatch(name.lower(), self.file.lower())


@dataclass(frozen=True)
class Source:
    id: str
    title: str
    producer: str
    file_regex: str
    blank_means: str
    vintages: dict[int, Vintage]
    derived: dict[str, list[str]] = field(default_factory=dict)

    @property
    def years(self) -> list[int]:
        return sorted(self.vintages)

    def claims(self, name: str) -> bool:
        return re.search(self.file_regex, name) is not None


@dataclass(frozen=True)
class Catalog:
    sources: dict[str, Source]
    secret_markers: frozenset[str]
    missing_markers: frozenset[str]
    technical_codes: frozenset[str]
    bundle_regex: str | None
    path: Path

    def source(self, source_id: str) -> Source:
        try:
            return self.sources[source_id]
        except KeyError:
            raise CatalogError(f"{self.path}: no source named {source_id!r}") from None

    def vintage(self, source_id: str, year: int | str) -> Vintage:
        source = self.source(source_id)
        try:
            return source.vintages[int(year)]
        except (KeyError, ValueError):
            raise CatalogError(
                f"{self.path}: source {source_id!r} has no vintage for year {year} "
                f"(years known: {', '.join(map(str, source.years))})"
            ) from None

    def is_bundle(self, name: str) -> bool:
        return self.bundle_regex is not None and re.search(self.bundle_regex, name) is not None

    @cached_property
    def all_vintages(self) -> list[Vintage]:
        return [v for s in self.sources.values() for v in s.vintages.values()]

    def vintages_for_file(self, name: str) -> list[Vintage]:
        """Every vintage stored in the file `name` (a bundle holds them all)."""
        if self.is_bundle(name):
            return [v for v in self.all_vintages if v.bundle_sheet]
        return [v for v in self.all_vintages if v.matches_file(name)]

    def source_of_file(self, name: str) -> Source | None:
        for source in self.sources.values():
            if source.claims(name):
                return source
        return None


def _merge_columns(base: dict[str, str | None], override: dict[str, str | None]) -> dict[str, str]:
    """Apply a vintage's column map on top of the source's: an entry replaces the
    default label of the same canonical name; a label mapped to null is removed."""
    merged = {label: canonical for label, canonical in base.items() if canonical}
    for label, canonical in override.items():
        if canonical is None:
            merged.pop(label, None)
            continue
        for old_label in [lbl for lbl, can in merged.items() if can == canonical]:
            del merged[old_label]
        merged[label] = canonical
    return merged


def load_catalog(paths: Paths | None = None) -> Catalog:
    paths = paths or project_paths()
    path = paths.catalog
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"{path}: the source catalog is missing") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML ({exc})") from None
    sources: dict[str, Source] = {}
    for source_id, spec in doc["sources"].items():
        base_columns = {str(k): v for k, v in (spec.get("columns") or {}).items()}
        vintages: dict[int, Vintage] = {}
        for year, vspec in (spec.get("vintages") or {}).items():
            columns = _merge_columns(base_columns, {str(k): v for k, v in (vspec.get("columns") or {}).items()})
            if "code_zone" not in columns.values():
                raise CatalogError(f"{path}: {source_id} {year} maps no column to code_zone")
            vintages[int(year)] = Vintage(
                source=source_id,
                year=int(year),
                file=str(vspec["file"]),
                sheet=None if vspec.get("sheet") is None else str(vspec["sheet"]),
                header_row=int(vspec.get("header_row", 1)),
                columns=columns,
                year_column=vspec.get("year_column"),
                bundle_sheet=vspec.get("bundle_sheet"),
                encoding=vspec.get("encoding"),
            )
        if spec.get("blank_means") not in ("secret_at_source", "missing"):
            raise CatalogError(f"{path}: {source_id}.blank_means must be secret_at_source or missing")
        sources[source_id] = Source(
            id=source_id,
            title=str(spec["title"]),
            producer=str(spec["producer"]),
            file_regex=str(spec["file_regex"]),
            blank_means=str(spec["blank_means"]),
            vintages=vintages,
            derived={k: list(v) for k, v in (spec.get("derived") or {}).items()},
        )
    markers = doc.get("markers") or {}
    return Catalog(
        sources=sources,
        secret_markers=frozenset(map(str, markers.get("secret_at_source", []))),
        missing_markers=frozenset(map(str, markers.get("missing", []))),
        technical_codes=frozenset(map(str, doc.get("technical_codes", []))),
        bundle_regex=(doc.get("bundle") or {}).get("file_regex"),
        path=path,
    )
