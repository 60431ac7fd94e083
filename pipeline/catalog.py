"""The source catalog: each source table declared once, as data, in `config/catalog.yaml`.

A source says where its files are (vintages: file, sheet, header row, layout, column
labels), what its zones are (zone level, and the scope of the file: only the territory,
or a whole department or France), and what it measures (each measure's label, type and
rules). The pandera schema (`schemas`), the staging, the lineage and the sample all
derive from this declaration: a new source or vintage is an edit of the catalog only.

This module only reads and resolves the catalog; it never opens a data file. Reading
files is `pipeline.extract`'s job.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pipeline.config_models import catalog as model
from pipeline.config_models.base import read_yaml, validated
from pipeline.config_models.catalog import CONFIDENTIAL, PUBLIABLE
from pipeline.errors import PipelineError
from pipeline.settings import Paths, project_paths


class CatalogError(PipelineError, ValueError):
    pass


KEY_COLUMNS = ("code_zone", "nom_zone")
# A source's classification (the vocabulary of config/governance.yaml): data received under
# the convention, destroyed when the study closes, or public open data, kept. The keys and
# the values each accepts are the model's (`pipeline.config_models.catalog`).
CLASSIFICATIONS = (CONFIDENTIAL, PUBLIABLE)


@dataclass(frozen=True)
class MeasureSpec:
    """A canonical measure, declared once: its label, its type, how it is computed."""

    name: str
    label: str
    type: str = "count"  # count (whole numbers) | decimal_count (weighted) | rate
    maximum: float | None = None  # rates: an upper bound that only catches misplaced decimals
    sum_of: tuple[str, ...] = ()  # derived: the sum of these measures (unknown if one is blank)

    @property
    def integer(self) -> bool:
        return self.type == "count"


@dataclass(frozen=True)
class AtMost:
    """Cross-measure rule: `smaller` ≤ `larger` on every row where both are known."""

    smaller: str
    larger: str

    @property
    def name(self) -> str:
        return f"{self.smaller} ≤ {self.larger}"


@dataclass(frozen=True)
class ZoneLevel:
    """A level of zone codes: its pattern, and the level above it (an IRIS lies in a commune)."""

    name: str
    pattern: str
    within: str | None = None
    parent_length: int | None = None  # the parent's code is the first n characters

    def well_formed(self, code: str) -> bool:
        return re.fullmatch(self.pattern, code) is not None

    def parent(self, code: str) -> str | None:
        return code[: self.parent_length] if self.parent_length else None


@dataclass(frozen=True)
class LongLayout:
    """A long file: one row per zone, period and measure (INSEE's Melodi files)."""

    period: str  # column holding the year
    measure: str  # column holding the measure code
    value: str  # column holding the value
    status: str | None = None  # column whose codes mark a value missing
    measure_codes: dict[str, str] = field(default_factory=dict)  # file's code -> canonical measure
    status_flags: dict[str, str] = field(default_factory=dict)  # status code -> flag (missing...)

    @property
    def labels(self) -> list[str]:
        return [c for c in (self.period, self.measure, self.value, self.status) if c]


@dataclass(frozen=True)
class Vintage:
    """One year of one source table in one form: where it is and how its columns are named."""

    source: str
    year: int
    file: str
    sheet: str | None
    header_row: int
    columns: dict[str, str]  # source label -> canonical name (long files: the zone columns)
    year_column: str | None = None
    bundle_sheet: str | None = None
    encoding: str | None = None
    layout: str = "wide"
    long: LongLayout | None = None
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)  # label -> values kept
    absent: tuple[str, ...] = ()  # measures this vintage does not have (not_available downstream)
    option: int = 0  # 0: the main form of the year; 1, 2...: other published forms
    labels: dict[str, str] = field(default_factory=dict, compare=False)  # measure -> its declared label

    @property
    def label_of(self) -> dict[str, str]:
        """canonical name -> source label."""
        return {canonical: label for label, canonical in self.columns.items()}

    @property
    def required_labels(self) -> list[str]:
        """Every column label the file must have."""
        labels = list(self.columns)
        if self.long:
            labels += [c for c in self.long.labels if c not in labels]
        return labels + [c for c in self.filters if c not in labels]

    @property
    def measures(self) -> list[str]:
        """The measures read from the file (not the derived ones, not the absent ones)."""
        if self.long:
            return list(dict.fromkeys(self.long.measure_codes.values()))
        return [c for label, c in self.columns.items() if c not in KEY_COLUMNS and label != self.year_column]

    def matches_file(self, name: str) -> bool:
        return fnmatch.fnmatch(name.lower(), self.file.lower())


@dataclass(frozen=True)
class Source:
    id: str
    title: str
    producer: str
    file_regex: str
    blank_means: str
    vintages: dict[int, Vintage]  # the main form of each year
    measures: dict[str, MeasureSpec] = field(default_factory=dict)
    rules: tuple[AtMost, ...] = ()
    zone_level: str = "commune"
    scope: str = "territory"
    other_forms: dict[int, tuple[Vintage, ...]] = field(default_factory=dict)
    description: str = ""
    classification: str = CONFIDENTIAL  # of its raw and staging tables
    articles: tuple[str, ...] = ()  # the convention articles that govern them
    licence: str | None = None  # public data: the licence they are published under

    @property
    def years(self) -> list[int]:
        return sorted(self.vintages)

    @property
    def derived(self) -> dict[str, list[str]]:
        return {m.name: list(m.sum_of) for m in self.measures.values() if m.sum_of}

    def forms(self, year: int) -> list[Vintage]:
        """Every form of a year, the main one first (tried in this order in raw/)."""
        return [self.vintages[year], *self.other_forms.get(year, ())]

    @property
    def all_vintages(self) -> list[Vintage]:
        return [v for year in self.years for v in self.forms(year)]

    def label(self, measure: str) -> str:
        spec = self.measures.get(measure)
        return f"{spec.label} ({measure})" if spec else measure

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
    zone_levels: dict[str, ZoneLevel] = field(default_factory=dict)

    def source(self, source_id: str) -> Source:
        try:
            return self.sources[source_id]
        except KeyError:
            raise CatalogError(f"{self.path}: no source named {source_id!r}") from None

    def vintage(self, source_id: str, year: int | str) -> Vintage:
        """The main form of a year."""
        return self.forms(source_id, year)[0]

    def forms(self, source_id: str, year: int | str) -> list[Vintage]:
        source = self.source(source_id)
        try:
            return source.forms(int(year))
        except (KeyError, ValueError):
            raise CatalogError(
                f"{self.path}: source {source_id!r} has no vintage for year {year} "
                f"(years known: {', '.join(map(str, source.years))})"
            ) from None

    def form_of_file(self, source_id: str, year: int | str, file_name: str) -> Vintage:
        """The form of a year that a file (its own or a bundle workbook) holds."""
        forms = self.forms(source_id, year)
        for vintage in forms:
            if vintage.matches_file(file_name):
                return vintage
        if self.is_bundle(file_name):
            for vintage in forms:
                if vintage.bundle_sheet:
                    return vintage
        return forms[0]

    def is_bundle(self, name: str) -> bool:
        return self.bundle_regex is not None and re.search(self.bundle_regex, name) is not None

    @cached_property
    def all_vintages(self) -> list[Vintage]:
        """Every form of every year of every source."""
        return [v for s in self.sources.values() for v in s.all_vintages]

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

    def expected_files(self) -> list[str]:
        """The file names (or patterns) the catalog knows, for messages."""
        return sorted({v.file for v in self.all_vintages}, key=str.lower)

    def level(self, name: str) -> ZoneLevel:
        try:
            return self.zone_levels[name]
        except KeyError:
            raise CatalogError(
                f"{self.path}: unknown zone level {name!r} (known: {', '.join(self.zone_levels)})"
            ) from None


# -- reading the YAML ----------------------------------------------------------------------

DEFAULT_LEVELS = {
    "commune": ZoneLevel("commune", r"(\d{5}|2[AB]\d{3})"),
}


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


def _measure(name: str, spec: model.Measure | str) -> MeasureSpec:
    if isinstance(spec, str):
        return MeasureSpec(name=name, label=spec)
    return MeasureSpec(name=name, label=spec.label, type=spec.type, maximum=spec.max, sum_of=spec.sum_of)


def _rule(where: str, text: str, measures: dict[str, MeasureSpec]) -> AtMost:
    match = re.fullmatch(r"\s*(\w+)\s*(<=|≤)\s*(\w+)\s*", str(text))
    if not match:
        raise CatalogError(f"{where}: rule {text!r} must read 'measure <= measure'")
    smaller, larger = match.group(1), match.group(3)
    for name in (smaller, larger):
        if name not in measures:
            raise CatalogError(f"{where}: rule {text!r} names {name!r}, which is not a declared measure")
    return AtMost(smaller, larger)


def _with_form(where: str, spec: model.Vintage, forms: dict[str, model.Vintage]) -> model.Vintage:
    """A vintage on top of its `form`: the keys it sets replace the form's."""
    if spec.form is None:
        return spec
    if spec.form not in forms:
        raise CatalogError(f"{where}: form {spec.form!r} is not declared under `forms`")
    return forms[spec.form].model_copy(update={k: getattr(spec, k) for k in spec.model_fields_set if k != "form"})


def _vintage(where: str, source_id: str, year: int, spec: model.Vintage, base_columns: dict,
             forms: dict[str, model.Vintage], measures: dict[str, MeasureSpec], option: int) -> Vintage:
    spec = _with_form(where, spec, forms)
    if spec.file is None:
        raise CatalogError(f"{where}: no `file`")
    columns = _merge_columns(base_columns, spec.columns)
    absent = tuple(spec.absent)
    for measure in absent:
        if measure not in measures:
            raise CatalogError(f"{where}: absent measure {measure!r} is not declared under `measures`")
    columns = {label: c for label, c in columns.items() if c not in absent}
    long = None
    if spec.layout == "long":
        if spec.long is None:
            raise CatalogError(f"{where}: a long layout needs `long` (period, measure, value, measure_codes)")
        lspec = spec.long
        long = LongLayout(
            period=lspec.period, measure=lspec.measure, value=lspec.value, status=lspec.status,
            measure_codes={k: v for k, v in lspec.measure_codes.items() if v and v not in absent},
            status_flags=dict(lspec.status_flags),
        )
        columns = {label: c for label, c in columns.items() if c in KEY_COLUMNS}
    if "code_zone" not in columns.values():
        raise CatalogError(f"{where}: maps no column to code_zone")
    unknown = [c for c in columns.values() if c not in KEY_COLUMNS and c not in measures and c != spec.year_column]
    if long:
        unknown += [c for c in long.measure_codes.values() if c not in measures]
    if unknown:
        raise CatalogError(f"{where}: column(s) mapped to {sorted(set(unknown))}, not declared under `measures`")
    mapped = set(long.measure_codes.values()) if long else set(columns.values())
    unread = [m.name for m in measures.values() if not m.sum_of and m.name not in mapped and m.name not in absent]
    if unread:
        raise CatalogError(
            f"{where}: no column for measure(s) {', '.join(unread)}: map the label that holds it, "
            "or list it under the vintage's `absent` if this year does not have it"
        )
    filters = {k: (v,) if isinstance(v, str) else tuple(v) for k, v in spec.filters.items()}
    return Vintage(
        source=source_id, year=year, file=spec.file, sheet=spec.sheet, header_row=spec.header_row, columns=columns,
        year_column=long.period if long else spec.year_column, bundle_sheet=spec.bundle_sheet, encoding=spec.encoding,
        layout=spec.layout, long=long, filters=filters, absent=absent, option=option,
        labels={name: m.label for name, m in measures.items()},
    )


def _source(path: Path, source_id: str, spec: model.Source, levels: dict[str, ZoneLevel]) -> Source:
    where = f"{path}: {source_id}"
    measures = {name: _measure(name, m) for name, m in spec.measures.items()}
    for m in measures.values():
        for term in m.sum_of:
            if term not in measures:
                raise CatalogError(f"{where}: measure {m.name} sums {term!r}, which is not declared")
    rules = tuple(_rule(where, text, measures) for text in spec.rules)
    if spec.zone.level not in levels:
        raise CatalogError(f"{where}: zone.level {spec.zone.level!r} is not declared under zone_levels")
    vintages: dict[int, Vintage] = {}
    others: dict[int, tuple[Vintage, ...]] = {}
    for year, vspec in spec.vintages.items():
        options = vspec if isinstance(vspec, tuple) else (vspec,)
        built = [
            _vintage(f"{where} {year}" + (f" (form {i + 1})" if len(options) > 1 else ""), source_id, year,
                     o, spec.columns, spec.forms, measures, i)
            for i, o in enumerate(options)
        ]
        vintages[year] = built[0]
        if built[1:]:
            others[year] = tuple(built[1:])
    return Source(
        id=source_id, title=spec.title, producer=spec.producer, file_regex=spec.file_regex,
        blank_means=spec.blank_means, vintages=vintages, measures=measures, rules=rules, zone_level=spec.zone.level,
        scope=spec.zone.scope, other_forms=others, description=spec.description or spec.title,
        classification=spec.classification, articles=spec.articles, licence=spec.licence,
    )


def load_catalog(paths: Paths | None = None) -> Catalog:
    paths = paths or project_paths()
    path = paths.catalog
    doc = validated(model.CatalogFile, read_yaml(path, CatalogError, "the source catalog is missing"),
                          path, CatalogError)
    levels = dict(DEFAULT_LEVELS)
    for name, spec in doc.zone_levels.items():
        levels[name] = ZoneLevel(name, spec.code, within=spec.within, parent_length=spec.parent_code_length)
    for level in levels.values():
        if level.within is not None and (level.within not in levels or not level.parent_length):
            raise CatalogError(f"{path}: zone level {level.name} lies within an undeclared level "
                               "or has no parent_code_length")
    return Catalog(
        sources={sid: _source(path, sid, spec, levels) for sid, spec in doc.sources.items()},
        secret_markers=frozenset(doc.markers.secret_at_source),
        missing_markers=frozenset(doc.markers.missing),
        technical_codes=frozenset(doc.technical_codes),
        bundle_regex=doc.bundle.file_regex,
        path=path,
        zone_levels=levels,
    )
