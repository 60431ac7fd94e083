"""Staging: from the faithful text copy of a table to canonical measures.

What belongs here: mapping source labels to canonical names, normalising zone codes
(numbers to 5-character INSEE codes, former codes to the referential's through
`config/commune_changes.csv`), dropping technical rows, reading numbers written the
French way (U+202F thousands separators, decimal commas), telling secret-at-source
blanks from missing cells and real zeros, and computing derived measures. What does
not: checking values against rules (`pipeline.validation`, with `schemas/`) and
aggregating zones (`pipeline.defs.warehouse`).

The staging table is long: one row per (zone, year, measure), with a `flag`
(`reported`, `secret_at_source`, `missing`) and a value only when reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.catalog import Catalog, Source, Vintage
from pipeline.extract import FILE_COLUMN, ROW_COLUMN, SHEET_COLUMN, _match_labels
from pipeline.tables import STAGING_PATTERN, column_names
from pipeline.territory import Territory

REPORTED, SECRET, MISSING = "reported", "secret_at_source", "missing"
ZONE_COLUMNS = ("code_zone", "nom_zone")
STAGING_COLUMNS = column_names(STAGING_PATTERN)  # declared, and described, in config/tables.yaml
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class CellProblem:
    """A cell that could not be read: where it is and which rule it breaks (never its value)."""

    row: int
    column: str
    rule: str


@dataclass
class StagedTable:
    source: str
    year: int
    wide: pd.DataFrame  # one row per zone: code_zone, nom_zone, level, _row, measures (float)
    flags: pd.DataFrame  # same index, one column per measure: REPORTED / SECRET / MISSING
    label_of: dict[str, str]  # canonical name -> source label, for reports
    measures: list[str]
    technical_rows: int = 0
    other_year_rows: int = 0
    problems: list[CellProblem] = field(default_factory=list)
    rows_outside_territory: int = 0  # zones of a wider file (France, a department) not in the territory
    rows_filtered: int = 0  # rows the vintage's filters leave out (another level, measure...)
    absent: list[str] = field(default_factory=list)  # measures the vintage declares absent

    def long(self) -> pd.DataFrame:
        """The staging table: one row per zone and measure."""
        frames = []
        for measure in self.measures:
            flag = self.flags[measure]
            frames.append(
                pd.DataFrame(
                    {
                        "source": self.source,
                        "year": self.year,
                        "level": self.wide["level"],
                        "zone_code": self.wide["code_zone"],
                        "measure": measure,
                        "value": self.wide[measure].where(flag == REPORTED),
                        "flag": flag,
                        "file_name": self.wide[FILE_COLUMN],
                        "sheet": self.wide[SHEET_COLUMN],
                        "source_row": self.wide[ROW_COLUMN],
                    }
                )
            )
        long = pd.concat(frames, ignore_index=True)
        long["year"] = long["year"].astype("int32")
        long["source_row"] = long["source_row"].astype("int32")
        long["value"] = long["value"].astype("float64")
        # typed even when every cell is empty (CSV files have no sheet), so that DuckDB
        # creates a VARCHAR column and later rows from a workbook fit in
        long["sheet"] = long["sheet"].astype("string")
        return long[STAGING_COLUMNS]


def normalise_code(text: str | None) -> str | None:
    """'62023', '62023.0', ' 62023 ' -> '62023'; '1001' -> '01001'; other codes unchanged."""
    if text is None or pd.isna(text):
        return None
    code = str(text).strip()
    if re.fullmatch(r"\d+\.0+", code):
        code = code.split(".")[0]
    if code.isdigit() and len(code) < 5:
        code = code.zfill(5)
    return code


def parse_number(text: str) -> float | None:
    """A number as written in French files ('1 214', '12,4'), or None if it is not one."""
    compact = re.sub(r"[\s\u00a0\u202f]", "", text)
    if "," in compact and "." not in compact:
        compact = compact.replace(",", ".")
    return float(compact) if _NUMBER.fullmatch(compact) else None


def parse_year(text: str | None) -> int | None:
    """2017, '2017', '2017.0' or a date '2017-12-31' -> 2017."""
    if text is None:
        return None
    match = re.match(r"\s*(\d{4})(?:\.0+)?(?:-\d{2}-\d{2}.*)?\s*$", str(text))
    return int(match.group(1)) if match else None


def resolve_labels(columns: list[str], vintage: Vintage) -> dict[str, str]:
    """canonical name -> column of the raw copy, for every label of the vintage found."""
    found = _match_labels(list(columns), list(vintage.columns))
    return {vintage.columns[label]: columns[idx] for label, idx in found.items()}


def _column(columns: list[str], label: str) -> str | None:
    found = _match_labels(list(columns), [label])
    return columns[found[label]] if label in found else None


def _text(value: object) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def _apply_filters(frame: pd.DataFrame, vintage: Vintage) -> tuple[pd.DataFrame, int]:
    """Keep the rows whose filter columns hold a declared value (e.g. GEO_OBJECT = COM)."""
    dropped = 0
    for label, values in vintage.filters.items():
        column = _column(list(frame.columns), label)
        if column is None:
            continue  # extraction already said the column is missing
        keep = frame[column].map(_text).isin(values)
        dropped += int((~keep).sum())
        frame = frame[keep]
    return frame, dropped


def _forced_column(measure: str) -> str:
    return f"_flag_{measure}"


def _pivot_long(frame: pd.DataFrame, vintage: Vintage, label_of: dict[str, str]
                ) -> tuple[pd.DataFrame, dict[str, str], list[CellProblem], int]:
    """A long table (one row per zone and measure) as one row per zone and a text column
    per measure (source row: the zone's first row). A status code that marks a value
    missing becomes a forced flag, in a column `_flag_<measure>`."""
    layout = vintage.long
    columns = list(frame.columns)
    code_col = label_of["code_zone"]
    measure_col, value_col = _column(columns, layout.measure), _column(columns, layout.value)
    status_col = _column(columns, layout.status) if layout.status else None
    measure = frame[measure_col].map(_text).map(layout.measure_codes)
    ignored = int(measure.isna().sum())  # other measures of the file
    frame, measure = frame[measure.notna()], measure[measure.notna()]
    codes = frame[code_col].map(normalise_code).fillna("")
    duplicated = pd.DataFrame({"code": codes, "measure": measure}).duplicated(keep="first")
    problems = [CellProblem(int(r), code_col, "one row per zone, period and measure (a row repeats another)")
                for r in frame.loc[duplicated, ROW_COLUMN]]
    frame, codes, measure = frame[~duplicated], codes[~duplicated], measure[~duplicated]
    first = frame[~codes.duplicated()]
    position = codes.map({code: i for i, code in enumerate(codes[~codes.duplicated()])}).to_numpy()
    wide = pd.DataFrame({
        code_col: first[code_col].to_numpy(),
        ROW_COLUMN: frame.groupby(codes.to_numpy(), sort=False)[ROW_COLUMN].min().to_numpy(),
        FILE_COLUMN: first[FILE_COLUMN].to_numpy(),
        SHEET_COLUMN: first[SHEET_COLUMN].to_numpy(),
    })
    label_of = {"code_zone": code_col}
    for name in dict.fromkeys(layout.measure_codes.values()):
        rows = (measure == name).to_numpy()
        values = np.full(len(wide), None, dtype=object)
        values[position[rows]] = frame.loc[rows, value_col].to_numpy()
        wide[name] = values
        label_of[name] = name
        if status_col is not None:
            forced = np.full(len(wide), None, dtype=object)
            forced[position[rows]] = frame.loc[rows, status_col].map(_text).map(layout.status_flags).to_numpy()
            wide[_forced_column(name)] = forced
    return wide, label_of, problems, ignored


def _zone_levels(codes: pd.Series, source: Source, catalog: Catalog, territory: Territory) -> pd.Series:
    """The level of each code: commune, rpe or epci of the territory, or the source's own
    level (an IRIS) when the code is well formed and lies within a zone of the territory."""
    spec = catalog.level(source.zone_level)

    def level(code: str | None) -> str | None:
        if not code:
            return None
        known = territory.level_of(code)
        if known or spec.within is None or not spec.well_formed(code):
            return known
        return spec.name if territory.level_of(spec.parent(code)) == spec.within else None

    return codes.map(level).astype("object")


def _read_cells(texts: pd.Series, rows: pd.Series, column: str, blank_flag: str, catalog: Catalog,
                forced: pd.Series | None, problems: list[CellProblem]) -> tuple[list[float], list[str]]:
    values, flags = [], []
    forced_flags = forced.tolist() if forced is not None else [None] * len(texts)
    for row, text, force in zip(rows, texts, forced_flags):
        if isinstance(force, str):  # the producer's status code says what the cell is
            values.append(np.nan), flags.append(force)
            continue
        if text is None or pd.isna(text) or not str(text).strip():
            values.append(np.nan), flags.append(blank_flag)
            continue
        text = str(text).strip()
        if text in catalog.secret_markers:
            values.append(np.nan), flags.append(SECRET)
        elif text in catalog.missing_markers:
            values.append(np.nan), flags.append(MISSING)
        else:
            number = parse_number(text)
            if number is None:
                problems.append(CellProblem(int(row), column, "a number or a secrecy marker"))
                flags.append(MISSING)
            else:
                flags.append(REPORTED)
            values.append(np.nan if number is None else number)
    return values, flags


def stage(raw: pd.DataFrame, vintage: Vintage, source: Source, catalog: Catalog, territory: Territory) -> StagedTable:
    """Canonical measures of one vintage from its raw text copy."""
    label_of = resolve_labels(list(raw.columns), vintage)
    problems: list[CellProblem] = []
    frame, filtered = _apply_filters(raw, vintage)

    other_year_rows = 0
    if vintage.year_column:
        year_col = _column(list(frame.columns), vintage.long.period) if vintage.long else label_of[vintage.year_column]
        years = frame[year_col].map(parse_year)
        for row in frame.loc[years.isna() & frame[year_col].notna(), ROW_COLUMN]:
            problems.append(CellProblem(int(row), year_col, "a year (2017) or a date"))
        keep = years == vintage.year
        other_year_rows = int((~keep & years.notna()).sum())
        frame = frame[keep | years.isna() & frame[year_col].notna()]

    if vintage.long:
        frame, label_of, long_problems, ignored = _pivot_long(frame, vintage, label_of)
        problems += long_problems
        filtered += ignored
    measures = list(vintage.measures)

    codes = frame[label_of["code_zone"]].map(normalise_code)
    technical = codes.isin(catalog.technical_codes)
    frame, codes = frame[~technical], codes[~technical]
    raw_codes = codes
    codes = codes.map(lambda c: territory.code_changes.get(c, c) if c else c)
    levels = _zone_levels(codes, source, catalog, territory)
    outside = pd.Series(False, index=frame.index)
    if source.scope != "territory":
        # A file wider than the territory: well-formed codes outside it are dropped and counted.
        spec = catalog.level(source.zone_level)
        outside = levels.isna() & codes.map(lambda c: bool(c) and spec.well_formed(c))
        frame, codes, levels, raw_codes = frame[~outside], codes[~outside], levels[~outside], raw_codes[~outside]

    wide = pd.DataFrame(
        {
            "code_zone": codes.astype("object"),
            "nom_zone": frame[label_of["nom_zone"]].astype("object") if "nom_zone" in label_of else None,
            "level": levels,
            ROW_COLUMN: frame[ROW_COLUMN].astype("int64"),
            FILE_COLUMN: frame[FILE_COLUMN],
            SHEET_COLUMN: frame[SHEET_COLUMN],
        },
        index=frame.index,
    )
    blank_flag = SECRET if source.blank_means == "secret_at_source" else MISSING
    flags = pd.DataFrame(index=frame.index)
    for measure in measures:
        column = label_of[measure]
        values, measure_flags = _read_cells(frame[column], frame[ROW_COLUMN], column, blank_flag, catalog,
                                            frame.get(_forced_column(measure)), problems)
        wide[measure] = pd.Series(values, index=frame.index, dtype="float64")
        flags[measure] = measure_flags
    for measure in vintage.absent:  # declared absent this year: known to be unknown, never zero
        wide[measure] = pd.Series(np.nan, index=frame.index, dtype="float64")
        flags[measure] = MISSING
        measures.append(measure)

    for derived, terms in source.derived.items():
        if all(t in wide for t in terms):
            term_flags = flags[terms]
            wide[derived] = wide[terms].sum(axis=1, min_count=len(terms)).where((term_flags == REPORTED).all(axis=1))
            flags[derived] = np.where(
                (term_flags == REPORTED).all(axis=1),
                REPORTED,
                np.where((term_flags == SECRET).any(axis=1), SECRET, MISSING),
            )
            measures.append(derived)

    wide, flags = _merge_changed_codes(wide, flags, measures, raw_codes=raw_codes, territory=territory)
    return StagedTable(
        source=source.id,
        year=vintage.year,
        wide=wide,
        flags=flags,
        label_of=label_of,
        measures=measures,
        technical_rows=int(technical.sum()),
        other_year_rows=other_year_rows,
        problems=problems,
        rows_outside_territory=int(outside.sum()),
        rows_filtered=filtered,
        absent=list(vintage.absent),
    )


def _merge_changed_codes(
    wide: pd.DataFrame, flags: pd.DataFrame, measures: list[str], raw_codes: pd.Series, territory: Territory
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sum the rows of former communes merged into one referential commune.

    Only rows whose code was mapped through config/commune_changes.csv are merged; a
    code that appears twice in the file itself stays twice, for validation to report.
    A merged value is known only when every former commune's value is known.
    """
    changed = (raw_codes.reindex(wide.index) != wide["code_zone"]) & wide["code_zone"].notna()
    if not changed.any():
        return wide, flags
    groups = wide[changed].groupby("code_zone").groups
    drop: list = []
    for code, index in groups.items():
        index = list(index)
        target = wide.index[(wide["code_zone"] == code) & ~changed]
        rows = index + list(target)
        keep, others = rows[0], rows[1:]
        for measure in measures:
            row_flags = flags.loc[rows, measure]
            if (row_flags == REPORTED).all():
                wide.loc[keep, measure] = wide.loc[rows, measure].sum()
                flags.loc[keep, measure] = REPORTED
            else:
                wide.loc[keep, measure] = np.nan
                flags.loc[keep, measure] = SECRET if (row_flags == SECRET).any() else MISSING
        wide.loc[keep, "nom_zone"] = None
        drop.extend(others)
    return wide.drop(index=drop), flags.drop(index=drop)
