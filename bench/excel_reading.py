"""Benchmark: reading the sample workbooks with python-calamine against openpyxl
(`python -m bench.excel_reading [--files F.xlsx ...] [--repeat N]`).

The same files, every sheet, every cell to a Python value, the way the ingest reads
them (`pipeline.extract._read_workbook` uses calamine's `to_python`):

- calamine: `CalamineWorkbook.from_path(f).get_sheet_by_name(s).to_python(skip_empty_area=False)`;
- openpyxl, read-only (its fastest mode): `load_workbook(f, read_only=True, data_only=True)`,
  then `iter_rows(values_only=True)`;
- openpyxl, default mode (what a naive reader does): `load_workbook(f, data_only=True)`.

Each reader runs in its own process (peak memory measured around it), reads every file
`--repeat` times and reports the median of the in-process reading time (interpreter
start and imports excluded; they are in the wall time). Default files: the CABBALR
sample (seed 2022), generated in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench._common import fmt_mb, fmt_s, measure, python_step, write_section

READERS = ("calamine", "openpyxl_read_only", "openpyxl")
TARGET_SPEEDUP = 5.0


def read_calamine(path: Path) -> int:
    import python_calamine

    workbook = python_calamine.CalamineWorkbook.from_path(str(path))
    cells = 0
    for name in workbook.sheet_names:
        rows = workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)
        cells += sum(len(r) for r in rows)
    return cells


def read_openpyxl(path: Path, read_only: bool) -> int:
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=read_only, data_only=True)
    cells = 0
    try:
        for sheet in workbook.worksheets:
            for row in sheet.iter_rows(values_only=True):
                cells += len(row)
    finally:
        if read_only:
            workbook.close()
    return cells


def read_all(reader: str, files: list[Path], repeat: int) -> dict:
    """In this process: the median time to read every file once, and the cells read."""
    fn = {"calamine": read_calamine,
          "openpyxl_read_only": lambda p: read_openpyxl(p, True),
          "openpyxl": lambda p: read_openpyxl(p, False)}[reader]
    times, cells = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        cells = sum(fn(f) for f in files)
        times.append(time.perf_counter() - started)
    return {"reader": reader, "median_s": statistics.median(times), "min_s": min(times), "cells": cells}


def compare(files: list[Path], repeat: int) -> list[tuple[str, dict, object]]:
    out = []
    for reader in READERS:
        m = measure(f"{reader}", python_step(["-m", "bench.excel_reading", "--read", reader, "--repeat", str(repeat),
                                               "--files", *map(str, files)]))
        data = json.loads(m.output.strip().splitlines()[-1]) if m.returncode == 0 else {}
        out.append((reader, data, m))
    return out


def render(results, files: list[Path], repeat: int, label: str) -> list[str]:
    base = next((d for r, d, _ in results if r == "calamine" and d), None)
    lines = [
        f"{label}: {len(files)} workbooks ({', '.join(f.name for f in files)}), "
        f"{base['cells'] if base else '?'} cells read per pass; median of {repeat} passes, each reader in its own "
        "process (`bench/excel_reading.py`).",
        "",
        "| reader | reading time (median) | process wall time | peak memory | calamine speed-up | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for reader, data, m in results:
        if not data:
            lines.append(f"| {reader} | FAILED | {fmt_s(m.wall_s)} | {fmt_mb(m.peak_mb)} | - | - | - |")
            continue
        speedup = data["median_s"] / base["median_s"] if base else float("nan")
        target = f">= {TARGET_SPEEDUP:.0f}x" if reader != "calamine" else "-"
        met = "-" if reader == "calamine" else ("**met**" if speedup >= TARGET_SPEEDUP else "**missed**")
        lines.append(f"| {reader} | {data['median_s'] * 1000:.0f} ms | {fmt_s(m.wall_s)} | {fmt_mb(m.peak_mb)} | "
                     f"{'1x' if reader == 'calamine' else f'{speedup:.1f}x'} | {target} | {met} |")
    return lines + [""]


def sample_files(workdir: Path) -> list[Path]:
    from pipeline.sample import generate

    return [p for p in generate(workdir / "raw", seed=2022) if p.suffix == ".xlsx"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.excel_reading", description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="+", type=Path, help="workbooks to read (default: the CABBALR sample)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--read", choices=READERS, help=argparse.SUPPRESS)  # one reader, in this process
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/results.md alone")
    args = parser.parse_args(argv)
    if args.read:
        print(json.dumps(read_all(args.read, args.files, args.repeat)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_excel_") as tmp:
        files = args.files or sample_files(Path(tmp))
        label = "Given files" if args.files else "CABBALR sample workbooks (seed 2022)"
        results = compare(files, args.repeat)
    body = render(results, files, args.repeat, label)
    print("\n".join(body))
    if not args.no_write and not args.files:
        write_section("excel_reading", "Excel reading: python-calamine against openpyxl", body)
    return 1 if any(m.returncode for _r, _d, m in results) else 0


if __name__ == "__main__":
    sys.exit(main())
