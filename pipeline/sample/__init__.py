"""Deterministic sample data: fake source files shaped like the ones the CAF sends.

What belongs here:
- a small statistical model of the territory (births, allocataires, children,
  childminders, childcare places...) per commune and year, drawn once from
  `numpy.random.default_rng(seed)` and shared by every source, so that sources agree;
- the CAF secrecy rule as the files apply it (values 1-4 blanked, then complementary
  blanks so that no blank can be recomputed from its RPE row);
- the quirks of the real files described in `shared/docs/source-formats.md` (title
  blocks and notes, codes stored as numbers, technical rows, RPE/EPCI total rows,
  unmapped extra columns, CSV encodings, thousands separators, decimal commas...);
- the writers of those workbooks and CSV files.

What does not belong here:
- where each table sits and how its columns are named: `config/catalog.yaml`, read
  through `pipeline.catalog`. Every file name, sheet, header row and mapped column
  label written here comes from the catalog, so editing the catalog changes the files;
- the territory (communes, RPE, EPCI): `config/territory.csv` and `config/zones.yaml`;
- reading files back: that is the ingest side's job.

`generate()` writes the files, `sample_truth()` returns the values behind them. The
values are random draws of plausible magnitude: no real personal data.

Two scales. `scale="cabbalr"` (default): the project's referential (`config/`), 100
communes. `scale="national"`: a synthetic France (`national_referential()`: about 34,900
communes, most under 500 inhabitants, in 101 departments, about 1,250 EPCIs and RPE-like
groups inside each EPCI), written as a referential folder (`territory.csv` with a
`code_epci` column, `zones.yaml` listing the EPCIs, the other config files copied) that
`CAF_CONFIG_DIR` can point to, then files of the same shapes from the same catalog.
"""

from __future__ import annotations

# The package's modules: `quirks` (what the catalog cannot say about the real files),
# `model` (the territory's statistical model, the secrecy rule, the truth behind the
# files), `writers` (tables and their workbook and CSV writers), `national` (a synthetic
# France); `generate` below ties them together.
__all__ = ["BUNDLE_FILE", "FIXED_TIME", "NATIONAL_COMMUNES", "SCALES", "SENTINEL_LABEL", "generate",
           "national_referential", "sample_truth", "sampled_sources", "secret_mask", "simulate",
           "write_national_referential"]

from pathlib import Path

from pipeline.catalog import Vintage
from pipeline.sample.model import (
    _build,
    sample_truth,
    sampled_sources,
    secret_mask,
    simulate,
)
from pipeline.sample.national import (
    NATIONAL_COMMUNES,
    SCALES,
    national_referential,
    write_national_referential,
)
from pipeline.sample.quirks import BUNDLE_FILE, FIXED_TIME, SENTINEL_LABEL
from pipeline.sample.writers import (
    _build_table,
    _check_name,
    _csv_encoding,
    _write_csv,
    _write_workbook,
)
from pipeline.settings import Paths


def generate(out_dir: Path, seed: int = 2022, *, bundle: bool = False, sentinel: str | None = None,
             paths: Paths | None = None, scale: str = "cabbalr", config_dir: Path | None = None,
             n_communes: int | None = None) -> list[Path]:
    """Write every file of every vintage of the catalog into `out_dir`; return the
    paths written, sorted.

    `bundle=True`: one workbook `BUNDLE_FILE` with one sheet per `bundle_sheet` instead of
    the separate workbooks (vintages without bundle_sheet, the INSEE CSVs, are still
    written as their own files). `sentinel`: written in an extra column `COMMENTAIRE`
    of every file/sheet and appended to one commune's name, to prove later that data
    were destroyed.

    `scale="national"`: first write a synthetic France's referential into `config_dir`
    (default: `config/` beside `out_dir`; the other config files are copied from
    `paths.config`), `n_communes` communes (default `NATIONAL_COMMUNES`), then the files
    for it. Point `CAF_CONFIG_DIR` (or `CAF_PROJECT_DIR`) at it to run the pipeline.
    """
    if scale == "national":
        out_dir = Path(out_dir)
        config_dir = Path(config_dir) if config_dir is not None else out_dir.parent / "config"
        write_national_referential(config_dir, seed, n_communes or NATIONAL_COMMUNES, paths=paths)
        paths = Paths(root=config_dir.parent, config=config_dir, raw=out_dir,
                      warehouse=config_dir.parent / "warehouse" / "warehouse.duckdb",
                      reports=config_dir.parent / "reports")
    elif scale != "cabbalr":
        raise ValueError(f"scale must be one of {SCALES}, not {scale!r}")
    elif n_communes is not None or config_dir is not None:
        raise ValueError("n_communes and config_dir apply to scale='national' only")
    s = _build(seed, paths)
    if sentinel is not None and any(SENTINEL_LABEL in v.columns for v in s.catalog.all_vintages):
        raise ValueError(f"the catalog maps {SENTINEL_LABEL}: the sentinel column must stay unmapped")
    if bundle and not s.catalog.is_bundle(BUNDLE_FILE):
        raise ValueError(f"{BUNDLE_FILE} does not match the catalog's bundle file_regex")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    workbooks: dict[str, dict[str, list[Vintage]]] = {}  # file -> sheet -> vintages
    csvs: dict[str, list[Vintage]] = {}
    for source in sampled_sources(s.catalog):
        for year in source.years:
            v = source.vintages[year]
            if bundle and v.bundle_sheet:
                workbooks.setdefault(BUNDLE_FILE, {}).setdefault(v.bundle_sheet, []).append(v)
                continue
            _check_name(v.file)
            suffix = Path(v.file).suffix.lower()
            if suffix == ".csv":
                csvs.setdefault(v.file, []).append(v)
            elif suffix == ".xlsx":
                workbooks.setdefault(v.file, {}).setdefault(v.sheet or "Feuil1", []).append(v)
            else:
                raise ValueError(f"{v.file}: the sample writes .xlsx and .csv files only")

    written = []
    for name, sheets in workbooks.items():
        tables = [(sheet, _build_table(s, vs, "xlsx", sentinel)) for sheet, vs in sheets.items()]
        _write_workbook(out_dir / name, tables)
        written.append(out_dir / name)
    for name, vs in csvs.items():
        _write_csv(out_dir / name, _build_table(s, vs, "csv", sentinel), _csv_encoding(vs))
        written.append(out_dir / name)
    return sorted(written)
