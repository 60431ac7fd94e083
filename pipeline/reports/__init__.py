"""The documents for the Petite Enfance committees, built from `published.indicators` only.

- `context`: reads `published.indicators` (and nothing else of the warehouse), the
  definitions, the territory, the study and `config/report.yaml` into a `ReportContext`;
- `texts`: French wording, number formatting, source lines, formula-injection guard;
- `excel`: the workbook `reports/indicateurs_petite_enfance.xlsx` (openpyxl);
- `geo`, `charts`, `svg`: commune outlines (GeoJSON), what each chart draws, and the small
  SVG writer the charts are written with (inline SVG, no plotting library);
- `html`: the self-contained page `reports/rapport_petite_enfance.html`;
- `guard`: re-reads both files and compares every figure with `published.indicators`.

Pure functions: the Dagster assets (`pipeline.defs.reports`) only open the warehouse
read-only, call them and move the files into `reports/`.
"""

from pipeline.reports.context import (
    EXCEL_NAME,
    HTML_NAME,
    PUBLISHED_TABLE,
    ReportConfig,
    ReportContext,
    ReportError,
    StudyInfo,
    build_context,
    check_published,
    load_report_config,
    load_study,
    read_published,
)

__all__ = [
    "EXCEL_NAME",
    "HTML_NAME",
    "PUBLISHED_TABLE",
    "ReportConfig",
    "ReportContext",
    "ReportError",
    "StudyInfo",
    "build_context",
    "check_published",
    "load_report_config",
    "load_study",
    "read_published",
]
