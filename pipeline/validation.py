"""Validation: the staged frame of one table and year against its pandera schema.

What belongs here: running the schema derived from the source's declaration in
`config/catalog.yaml` (`schemas.schema_for`, lazily, so every broken rule is reported at
once), merging its failures with the cells staging could not read, and wording the
report with file, sheet, source rows, source column, rule and row count.
Failure *values* are never reported: cells may be confidential. Zone codes are not
confidential and are named when unknown, with the hint to map former codes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd
import pandera.errors
import pandera.pandas as pa

from pipeline.catalog import Catalog, Source, load_catalog
from pipeline.extract import FILE_COLUMN, ROW_COLUMN, SHEET_COLUMN, IngestError
from pipeline.staging import StagedTable
from pipeline.territory import Territory
from schemas import schema_for

MAX_ROWS_LISTED = 10


@dataclass(frozen=True)
class RuleFailure:
    rule: str
    column: str | None  # source label (or canonical name when there is none)
    rows: tuple[int, ...]  # source row numbers, as the data engineer sees them in Excel
    hint: str = ""

    def describe(self) -> str:
        where = f"column {self.column!r}: " if self.column else ""
        shown = ", ".join(map(str, self.rows[:MAX_ROWS_LISTED])) + (" ..." if len(self.rows) > MAX_ROWS_LISTED else "")
        plural = "s" if len(self.rows) != 1 else ""
        text = (f"{where}{self.rule}, broken on {len(self.rows)} row{plural}"
                + (f" (row{plural} {shown})" if shown else ""))
        return text + (f"; {self.hint}" if self.hint else "")


@dataclass
class ValidationReport:
    file: str
    sheet: str | None
    source: str
    year: int
    rows_checked: int
    failures: list[RuleFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rows_outside_territory: int = 0
    absent_measures: list[str] = field(default_factory=list)  # labels of the measures declared absent

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def failed_rows(self) -> int:
        return len({row for f in self.failures for row in f.rows})

    def to_error(self) -> IngestError:
        where = f"sheet {self.sheet!r}, " if self.sheet else ""
        return IngestError(
            self.file,
            f"{where}{self.source} {self.year}: {len(self.failures)} rule(s) broken, {self.failed_rows} row(s) failed",
            [f.describe() for f in self.failures],
        )

    def metadata(self) -> dict:
        """Counts and locations for Dagster metadata: no cell values."""
        return {
            "rows_checked": self.rows_checked,
            "rules_broken": len(self.failures),
            "rows_failed": self.failed_rows,
            "failures": [f.describe() for f in self.failures],
            "warnings": list(self.warnings),
            "rows_outside_territory": self.rows_outside_territory,
            "absent_measures": list(self.absent_measures),
        }


def _readable_check(check: str) -> str:
    names = {
        "field_uniqueness": "one row per zone and year (zone code appears more than once)",
        "not_nullable": "a value is required",
        "column_in_dataframe": "the column is required",
    }
    if check in names:
        return names[check]
    if check.startswith("dtype("):
        return "must hold numbers"
    return check


def _zone_check(staged: StagedTable, source: Source, catalog: Catalog, territory: Territory) -> pa.Check:
    """Codes of the territory (communes, RPE, EPCI) or, for a level under the commune
    (IRIS), well-formed codes lying within a commune of the territory."""
    known = set(territory.commune_codes | territory.rpe_codes | territory.epci_codes)
    if catalog.level(source.zone_level).within is not None:
        known |= set(staged.wide.loc[staged.wide["level"] == source.zone_level, "code_zone"])
    if source.scope == "territory":
        error = "must be a zone of the territory referential"
    else:
        level = catalog.level(source.zone_level)
        error = (f"must be a well-formed {level.name} code (pattern {level.pattern}) or a zone of the territory "
                 "referential: codes outside the territory are dropped, malformed ones are not")
    return pa.Check.isin(sorted(known), error=error, name=error)


def validate(staged: StagedTable, territory: Territory, catalog: Catalog | None = None) -> ValidationReport:
    catalog = catalog or load_catalog()
    source = catalog.source(staged.source)
    wide = staged.wide
    file = str(wide[FILE_COLUMN].iloc[0]) if len(wide) else "?"
    sheet = wide[SHEET_COLUMN].iloc[0] if len(wide) else None
    report = ValidationReport(file, sheet if isinstance(sheet, str) else None, staged.source, staged.year, len(wide))
    report.rows_outside_territory = staged.rows_outside_territory
    report.absent_measures = [source.label(m) for m in staged.absent]
    if staged.absent:
        report.warnings.append(
            "measures absent from this vintage (declared in config/catalog.yaml, not_available downstream): "
            + "; ".join(report.absent_measures)
        )

    by_rule: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for problem in staged.problems:
        by_rule[(f"must be {problem.rule}", problem.column)].append(problem.row)

    rules = {rule.name: rule for rule in source.rules}
    schema = schema_for(source, _zone_check(staged, source, catalog, territory),
                        [m for m in staged.measures if m in source.measures])
    unknown_codes: list[str] = []
    try:
        schema.validate(wide.reset_index(drop=True), lazy=True)
    except pandera.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        rows_of = wide[ROW_COLUMN].reset_index(drop=True)
        for _, case in cases.iterrows():
            column = case["column"] if isinstance(case["column"], str) else None
            check = str(case["check"])
            if check in rules:  # a rule across columns: reported once per row, not per column
                column = None
            label = staged.label_of.get(column, column) if column else None
            index = case["index"]
            row = int(rows_of.iloc[int(index)]) if index is not None and not pd.isna(index) else None
            if column == "code_zone" and "referential" in check:
                unknown_codes.append(str(case["failure_case"]))
            rule = _readable_check(check)
            if check in rules:
                terms = (rules[check].smaller, rules[check].larger)
                labels = [staged.label_of.get(m, m) for m in terms]
                rule = f"rule {check} (columns {labels[0]!r} and {labels[1]!r})"
            key = (rule, label)
            if row is None:
                by_rule.setdefault(key, [])
            else:
                by_rule[key].append(row)

    for (rule, column), rows in by_rule.items():
        hint = ""
        if "referential" in rule:
            codes = ", ".join(sorted(set(unknown_codes))[:MAX_ROWS_LISTED])
            hint = (
                f"unknown codes: {codes}; a former commune code needs a line in config/commune_changes.csv, "
                "a new commune a line in config/territory.csv"
            ) if source.scope == "territory" else (
                f"codes: {codes}; is the zone column of config/catalog.yaml the right one?"
            )
        report.failures.append(RuleFailure(rule, column, tuple(sorted(set(rows))), hint))

    present = set(wide["code_zone"].dropna())
    level = catalog.level(source.zone_level)
    if level.within is not None:  # an IRIS file covers the communes its IRIS lie in
        present |= {level.parent(c) for c in wide.loc[wide["level"] == level.name, "code_zone"]}
    absent = sorted(territory.commune_codes - present)
    if absent and staged.source:
        listed = ", ".join(absent[:MAX_ROWS_LISTED]) + (" ..." if len(absent) > MAX_ROWS_LISTED else "")
        report.warnings.append(f"{len(absent)} commune(s) of the referential have no row: {listed}")
    return report
