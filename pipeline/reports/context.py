"""What a report is built from: `published.indicators`, the definitions, the territory,
the study and `config/report.yaml`, gathered in one `ReportContext`.

`published.indicators` is the only table of the warehouse the reports read (written by
the disclosure stage, asset `out_indicators`): figures that passed the statistical
secret of the convention (article 4). Nothing here reads a confidential, staging or raw
table. The frame is checked on the way in (columns, statuses, a value exactly when the
status is `published`): the reports fail rather than show a value they should not.

A `ReportContext` is built once per document (and once per guard check): what the
writers and the guard ask many times (a figure by indicator, zone and year; the zones in
order; the last year, decimals and fingerprint of the data) is computed when it is built,
from the frame it holds, and never refreshed: build a new context for new figures.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.config_models.report import Symbols
from pipeline.coverage import Coverage
from pipeline.disclosure.policy import Policy, load_policy
from pipeline.errors import PipelineError
from pipeline.fingerprint import frame_fingerprint
from pipeline.indicators import Indicator, IndicatorSet, load_indicators
from pipeline.settings import Paths, project_paths
from pipeline.study import StudyError
from pipeline.study import load_study as read_study
from pipeline.tables import PUBLISHED_TABLE, column_names, primary_key
from pipeline.territory import Territory, load_territory

PUBLISHED_COLUMNS = tuple(column_names(PUBLISHED_TABLE))  # declared in config/tables.yaml
STATUSES = ("published", "masked", "not_available")
LEVELS = ("epci", "rpe", "commune", "iris")
EXCEL_NAME = "indicateurs_petite_enfance.xlsx"
HTML_NAME = "rapport_petite_enfance.html"
REPORT_CONFIG = "report.yaml"


class ReportError(PipelineError, RuntimeError):
    pass


# ---- config/report.yaml --------------------------------------------------------------


@dataclass(frozen=True)
class ReportConfig:
    geometry_path: Path | None
    code_property: str = "code"
    name_property: str = "nom"
    symbols: Symbols = field(default_factory=Symbols)
    sheet_names: dict[str, str] = field(default_factory=dict)
    measure_labels: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    producers: dict[str, str] = field(default_factory=dict)
    colours: dict = field(default_factory=dict)

    def producer_name(self, producer: str) -> str:
        return self.producers.get(producer, producer)

    def colour(self, key: str, default):
        return self.colours.get(key, default)


def load_report_config(paths: Paths | None = None) -> ReportConfig:
    """The documents' settings from `config/report.yaml`, as its model read it (every key
    optional, the file too). The French names of the measures come from their declaration
    in `config/catalog.yaml` (report.yaml's `measure_labels`, if any, override them)."""
    from pipeline.config_models.report import report_file  # the model raises this module's ReportError

    paths = paths or project_paths()
    doc = report_file(paths)
    geometry_path = None
    if doc.geometry.path:
        geometry_path = Path(doc.geometry.path).expanduser()
        if not geometry_path.is_absolute():
            geometry_path = (paths.root / geometry_path).resolve()

    def words(mapping: dict) -> dict[str, str]:  # a text folded over lines in the YAML reads as one line
        return {str(k): " ".join(str(v).split()) for k, v in mapping.items()}

    return ReportConfig(
        geometry_path=geometry_path,
        code_property=doc.geometry.code_property,
        name_property=doc.geometry.name_property,
        symbols=doc.symbols,
        sheet_names=words(doc.sheet_names),
        measure_labels={**_catalog_labels(paths), **words(doc.measure_labels)},
        notes=words(doc.notes),
        producers=words(doc.producers),
        colours=doc.colours.model_dump(exclude_none=True),
    )


# ---- config/study.yaml ---------------------------------------------------------------


@dataclass(frozen=True)
class StudyInfo:
    study_id: str
    title: str
    data_provider: str
    partner: str
    partner_short: str
    signed_on: dt.date | None = None
    responsible: str | None = None
    status: str = "open"

    @property
    def double_sign_off(self) -> str:
        """The double sign-off of article 3: the partner and the CAF."""
        return f"{self.partner_short} – {self.data_provider}"


def load_study(paths: Paths | None = None, territory: Territory | None = None) -> StudyInfo:
    """The study as the documents present it (parties, double sign-off of article 3)."""
    try:
        study = read_study(paths)
    except StudyError as exc:
        raise ReportError(str(exc)) from None
    territory = territory or load_territory(paths)
    signed = study.convention.get("signed_on")
    return StudyInfo(
        study_id=study.study_id,
        title=study.title,
        data_provider=str(study.parties.get("data_provider", "CAF du Pas-de-Calais")),
        partner=str(study.parties.get("partner", territory.epci_name)),
        partner_short=territory.epci_short_name,
        signed_on=signed if isinstance(signed, dt.date) else None,
        responsible=study.responsible or None,
        status=study.status,
    )


# ---- published.indicators -------------------------------------------------------------


def check_published(frame: pd.DataFrame, indicators: IndicatorSet | None = None) -> pd.DataFrame:
    """The published frame with clean types, or ReportError (counts and codes only, never values)."""
    missing = [c for c in PUBLISHED_COLUMNS if c not in frame.columns]
    if missing:
        raise ReportError(f"{PUBLISHED_TABLE} lacks column(s) {missing}")
    out = frame[list(PUBLISHED_COLUMNS)].copy()
    for column in ("level", "zone_code", "zone_name", "indicator", "status", "study_id"):
        out[column] = out[column].astype("string")
    out["parent_code"] = out["parent_code"].astype("string")
    out["year"] = pd.to_numeric(out["year"], errors="raise").astype("int64")
    out["value"] = pd.to_numeric(out["value"], errors="raise").astype("float64")
    problems = []
    null_level = ["NULL"] if out["level"].isna().any() else []
    bad_levels = sorted(set(out["level"].dropna().unique()) - set(LEVELS)) + null_level
    if bad_levels:
        problems.append(f"unknown level(s) {bad_levels}")
    null_status = ["NULL"] if out["status"].isna().any() else []
    bad_status = sorted(set(out["status"].dropna().unique()) - set(STATUSES)) + null_status
    if bad_status:
        problems.append(f"unknown status(es) {bad_status}")
    if out["zone_code"].isna().any():
        problems.append(f"{int(out['zone_code'].isna().sum())} row(s) without zone_code")
    hidden_with_value = int(((out["status"] != "published") & out["value"].notna()).sum())
    if hidden_with_value:
        problems.append(f"{hidden_with_value} masked or not_available row(s) carry a value")
    published_without = int(((out["status"] == "published") & out["value"].isna()).sum())
    if published_without:
        problems.append(f"{published_without} published row(s) have no value")
    dups = int(out.duplicated(primary_key(PUBLISHED_TABLE)).sum())
    if dups:
        problems.append(f"{dups} duplicated (level, zone, indicator, year) row(s)")
    if indicators is not None:
        unknown = sorted(set(out["indicator"].dropna().unique()) - set(indicators.ids))
        if unknown:
            problems.append(f"indicator(s) not in config/indicators.yaml: {unknown}")
        allowed = pd.MultiIndex.from_tuples([(i.id, y) for i in indicators.indicators for y in i.all_years],
                                            names=["indicator", "year"])
        pairs = pd.MultiIndex.from_arrays([out["indicator"].astype(object), out["year"]])
        off = out[out["indicator"].isin(indicators.ids) & ~pairs.isin(allowed)]
        if len(off):
            problems.append(
                f"{len(off)} row(s) for years outside their indicator's years "
                f"({sorted(set(off['indicator']))})"
            )
    if problems:
        raise ReportError(f"{PUBLISHED_TABLE} cannot be reported: " + "; ".join(problems))
    return out.reset_index(drop=True)


def read_published(con: duckdb.DuckDBPyConnection, indicators: IndicatorSet | None = None) -> pd.DataFrame:
    """`published.indicators`, checked. The one table of the warehouse the reports read."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'published' AND table_name = 'indicators'"
    ).fetchone()[0]
    if not exists:
        raise ReportError(f"{PUBLISHED_TABLE} does not exist: materialize out_indicators first")
    frame = con.execute(
        f"SELECT {', '.join(PUBLISHED_COLUMNS)} FROM {PUBLISHED_TABLE} ORDER BY indicator, level, zone_code, year"
    ).df()
    return check_published(frame, indicators)


def fingerprint(published: pd.DataFrame) -> str:
    """The fingerprint of the published table (pipeline.fingerprint, order-independent):
    the version of the data, the same as in out_indicators' metadata and the manifest."""
    return frame_fingerprint(published[list(PUBLISHED_COLUMNS)])


def _catalog_labels(paths: Paths) -> dict[str, str]:
    from pipeline.catalog import CatalogError, load_catalog

    try:
        catalog = load_catalog(paths)
    except CatalogError:
        return {}
    return {name: m.label for source in catalog.sources.values() for name, m in source.measures.items()}


# ---- the context ----------------------------------------------------------------------


@dataclass(frozen=True)
class Zone:
    level: str
    code: str
    name: str
    rpe_code: str | None  # the zone's RPE (itself for an RPE), None for the EPCI
    commune_code: str | None = None  # an IRIS: its commune


@dataclass
class ReportContext:
    published: pd.DataFrame
    indicators: IndicatorSet
    territory: Territory
    study: StudyInfo
    config: ReportConfig
    policy: Policy  # config/disclosure.yaml: the rules and numbers the documents state
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now().replace(microsecond=0))
    # which years' files came (`pipeline.coverage`, from the ingest ledger); None: unknown, every
    # declared year is taken as covered (a frame built by hand, in the tests)
    coverage: Coverage | None = None

    def __post_init__(self) -> None:
        self.published = check_published(self.published, self.indicators)
        frame = self.published
        indicator, zone, year = (frame[c].astype(object).tolist() for c in ("indicator", "zone_code", "year"))
        status = frame["status"].astype(object).tolist()
        value = [None if v != v else v for v in frame["value"].tolist()]  # NaN -> None
        self._cells = {(i, z, y): (st, v) for i, z, y, st, v in zip(indicator, zone, year, status, value)}
        present = set(indicator)
        # the indicators of the communes, RPE and EPCI; one published below the commune only
        # (`communal` False) has the IRIS parts of the reports alone
        self._reported = [i for i in self.indicators.indicators if i.id in present and i.communal]
        self._iris_indicators = [i for i in self.indicators.indicators if i.id in
                                 set(frame.loc[frame["level"] == "iris", "indicator"].astype(object))]
        self._last_year: dict[str, int] = {}
        self._integer_valued: dict[str, bool] = {}
        self._has_year: dict[tuple[str, int], bool] = {}
        for i, y, v in zip(indicator, year, value):
            self._last_year[i] = max(y, self._last_year.get(i, y))
            self._has_year[(i, y)] = True
            if v is not None and not float(v).is_integer():
                self._integer_valued[i] = False
        self._fingerprint = fingerprint(frame)
        self._iris = self._iris_by_commune()
        self._zones = self._ordered_zones()
        self._rpe_names = {z.code: z.name for z in self._zones if z.level == "rpe"}

    # -- the data
    @property
    def data_version(self) -> str:
        return self._fingerprint[:12]

    @property
    def study_ids(self) -> list[str]:
        return sorted(set(self.published["study_id"].dropna().unique()))

    def cell(self, indicator: str, zone_code: str, year: int) -> tuple[str, float | None] | None:
        """(status, value) of a figure, None when published.indicators has no such row."""
        return self._cells.get((indicator, zone_code, int(year)))

    @property
    def reported_indicators(self) -> list[Indicator]:
        return list(self._reported)

    @property
    def years(self) -> list[int]:
        """The years the documents cover: those of some indicator whose files came."""
        return sorted({y for i in self._reported for y in self.indicator_years(i)})

    @property
    def declared_years(self) -> list[int]:
        """Every year an indicator declares: the tables' columns (a faithful copy of
        published.indicators, « nd » where no file came)."""
        return sorted({y for i in self._reported for y in i.years})

    def indicator_years(self, indicator: Indicator) -> list[int]:
        """The indicator's declared years whose files came (all of them when that is unknown, or
        when none came: its figures are then all « nd », and the documents say why)."""
        covered = self.coverage.covered(indicator) if self.coverage is not None else []
        return covered or list(indicator.years)

    def missing_years(self, indicator: Indicator) -> list[tuple[int, str]]:
        """(year, file expected) of each declared year whose file never came."""
        return self.coverage.missing_of(indicator) if self.coverage is not None else []

    def missing_text(self, indicators: list[Indicator] | None = None) -> str:
        """'2021 (BCA2021.xlsx, BCECPAJ21.xlsx)': the years without files, for the documents."""
        by_year: dict[int, list[str]] = {}
        for indicator in indicators if indicators is not None else self._reported:
            for year, file in self.missing_years(indicator):
                by_year.setdefault(year, [])
                if file not in by_year[year]:
                    by_year[year].append(file)
        return "; ".join(f"{y} ({', '.join(files)})" for y, files in sorted(by_year.items()))

    def last_year(self, indicator: Indicator) -> int:
        """The last year with figures of the indicator (a year whose files never came has none)."""
        covered = [y for y in self.indicator_years(indicator) if self._has_year.get((indicator.id, y))]
        return max(covered) if covered else self._last_year.get(indicator.id, max(indicator.all_years))

    def integer_valued(self, indicator: Indicator) -> bool:
        """Whether every published figure of the indicator is a whole number."""
        return self._integer_valued.get(indicator.id, True)

    # -- the zones, in the order of the reports: EPCI, then each RPE followed by its communes
    def zones(self) -> list[Zone]:
        """The EPCI, RPE and communes (the IRIS: `iris_of`)."""
        return list(self._zones)

    # -- the IRIS of the communes cut into IRIS (level iris of published.indicators)
    def _iris_by_commune(self) -> dict[str, list[Zone]]:
        rows = self.published.loc[self.published["level"] == "iris", ["zone_code", "zone_name", "parent_code"]]
        rpe_of = dict(zip(self.territory.communes["code_commune"], self.territory.communes["code_rpe"]))
        out: dict[str, list[Zone]] = {}
        for row in rows.drop_duplicates("zone_code").sort_values("zone_code").itertuples(index=False):
            commune = None if pd.isna(row.parent_code) else str(row.parent_code)
            out.setdefault(commune, []).append(
                Zone("iris", str(row.zone_code), str(row.zone_name), rpe_of.get(commune), commune))
        return out

    def communes_with_iris(self) -> list[Zone]:
        """The communes published.indicators has IRIS for, in the order of the reports."""
        return [z for z in self._zones if z.level == "commune" and z.code in self._iris]

    def iris_of(self, commune_code: str) -> list[Zone]:
        return list(self._iris.get(commune_code, []))

    def iris_indicators(self) -> list[Indicator]:
        """The indicators published at the IRIS level (some of them there only)."""
        return list(self._iris_indicators)

    def iris_only_indicators(self) -> list[Indicator]:
        """The indicators published at the IRIS level only (no commune, RPE or EPCI figure)."""
        return [i for i in self._iris_indicators if not i.communal]

    def iris_years(self, indicator: Indicator) -> list[int]:
        """The years of the indicator's IRIS figures."""
        mine = self.published[(self.published["level"] == "iris") & (self.published["indicator"] == indicator.id)]
        return sorted({int(y) for y in mine["year"]})

    def _ordered_zones(self) -> list[Zone]:
        names = dict(zip(self.published["zone_code"].astype(object), self.published["zone_name"].astype(object)))
        t = self.territory
        out = [Zone("epci", t.epci_code, names.get(t.epci_code, t.epci_name), None)]
        for rpe_code, rpe_name in t.rpe_names.items():
            out.append(Zone("rpe", rpe_code, names.get(rpe_code, rpe_name), rpe_code))
            communes = t.communes[t.communes["code_rpe"] == rpe_code]
            for code, name in zip(communes["code_commune"], communes["nom_commune"]):
                out.append(Zone("commune", code, names.get(code, name), rpe_code))
        # only the zones published.indicators has: a zone of the territory it lacks is not shown
        out = [z for z in out if z.code in names]
        known = {z.code for z in out}
        others = self.published[(self.published["level"] != "iris") & ~self.published["zone_code"].isin(known)]
        extra = others[["level", "zone_code", "zone_name", "parent_code"]].drop_duplicates("zone_code")
        order = {lvl: i for i, lvl in enumerate(LEVELS)}
        for row in sorted(extra.itertuples(index=False), key=lambda r: (order.get(r.level, 9), r.zone_code)):
            rpe = row.zone_code if row.level == "rpe" else (row.parent_code if row.level == "commune" else None)
            out.append(Zone(str(row.level), str(row.zone_code), str(row.zone_name), None if pd.isna(rpe) else str(rpe)))
        return out

    def rpes(self) -> list[Zone]:
        return [z for z in self._zones if z.level == "rpe"]

    def communes_of(self, rpe_code: str) -> list[Zone]:
        return [z for z in self._zones if z.level == "commune" and z.rpe_code == rpe_code]

    def rpe_name(self, rpe_code: str | None) -> str:
        if rpe_code is None:
            return ""
        if rpe_code in self._rpe_names:
            return self._rpe_names[rpe_code]
        return self.territory.rpe_names.get(rpe_code, rpe_code)


def build_context(
    published: pd.DataFrame,
    paths: Paths | None = None,
    generated_at: dt.datetime | None = None,
    indicators: IndicatorSet | None = None,
    territory: Territory | None = None,
    config: ReportConfig | None = None,
    coverage: Coverage | None = None,
    policy: Policy | None = None,
) -> ReportContext:
    """The context from a published frame and the project's configuration files
    (`indicators`, `territory`, `config`: what the caller has already read, e.g. through
    the project resource; the rest is read from `paths`)."""
    paths = paths or project_paths()
    indicators = indicators or load_indicators(paths)
    territory = territory or load_territory(paths)
    context = ReportContext(
        published=published,
        indicators=indicators,
        territory=territory,
        study=load_study(paths, territory),
        config=config or load_report_config(paths),
        policy=policy or load_policy(paths),
        coverage=coverage,
    )
    if generated_at is not None:
        context.generated_at = generated_at
    return context
