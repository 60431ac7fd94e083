"""Benchmark: the pipeline on a synthetic France (`python -m bench.national [--communes N]`).

`pipeline.sample.generate(..., scale="national")` writes a referential (34,900
communes in 101 departments, about 1,250 EPCIs, RPE-like groups inside each EPCI) and
files of the same shapes as the CABBALR sample into a throw-away project folder; then,
each in its own process:

- generation (the sample generator itself, for the record; not part of the pipeline);
- end to end: `python -m bench._runner materialize --exclude-groups reports`: the 22
  ingest runs (read, copy, stage, validate), the warehouse, masking with its audit
  rounds and the blocking audit check, the published table. The committee reports
  are not run: they are one agglomeration's documents (one workbook, one page with a
  chart per RPE); at national scale they would be one per EPCI, which they do not
  do yet (docs/scale.md);
- masking + audit alone: `python -m bench._runner mask`, `mask()` on every cell
  (sub-problems per year and EPCI, solved in one process per core) then the blocking
  audit with sums, on the warehouse the end-to-end run built;
- Excel reading of the national workbooks, calamine against openpyxl (read-only).

Wall time around each process; peak memory of its largest process or of its process
tree (worker processes included), whichever is larger. Figures and targets go to
bench/results.md. Takes 10 to 20 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from bench._common import Measure, fmt_mb, fmt_s, measure, new_project, python_step, verdict, write_section
from bench.excel_reading import compare
from bench.suite import steps_seconds

TARGETS = {"end to end": (300.0, 4096.0), "masking + audit": (120.0, None)}
SEED = 2022


def run(workdir: Path, communes: int | None, excel: bool) -> tuple[list[tuple[Measure, str, tuple]], dict, list]:
    project = new_project(workdir / "france")
    env = project.env()
    n = f", n_communes={communes}" if communes else ""
    rows = []
    print("national: generating the synthetic France", file=sys.stderr, flush=True)
    code = (f"from pathlib import Path; from pipeline.sample import generate; "
            f"generate(Path({str(project.raw)!r}), seed={SEED}, scale='national', "
            f"config_dir=Path({str(project.config)!r}){n})")
    m = measure("generation", python_step(["-c", code]), env)
    rows.append((m, "`generate(raw, scale='national')`: referential and 14 files (not part of the pipeline)", (None, None)))
    facts = referential_facts(project)

    print("national: end to end", file=sys.stderr, flush=True)
    m = measure("end to end", python_step(["-m", "bench._runner", "materialize", "--exclude-groups", "reports"]), env)
    rows.append((m, "ingest (22 runs), warehouse, masking + audit rounds, blocking audit check, published table",
                 TARGETS["end to end"]))
    step_rows = stage_breakdown(m.output)

    print("national: masking + audit", file=sys.stderr, flush=True)
    m = measure("masking + audit", python_step(["-m", "bench._runner", "mask"]), env)
    rows.append((m, "`mask()` (sub-problems per year and EPCI, one worker process per core) then the blocking "
                    "audit with sums, without Dagster", TARGETS["masking + audit"]))
    excel_rows = []
    if excel:
        files = sorted(project.raw.glob("*.xlsx"))
        excel_rows = compare(files, repeat=1)
    return rows, facts | {"steps": step_rows}, excel_rows


def referential_facts(project) -> dict:
    import pandas as pd

    from pipeline.territory import departement_of

    territory = pd.read_csv(project.config / "territory.csv", sep=";", dtype=str)
    pop = territory["population_2021"].astype(int)
    return {
        "communes": len(territory),
        "under_500": float((pop < 500).mean()),
        "departments": territory["code_commune"].map(departement_of).nunique(),
        "epcis": territory["code_epci"].nunique(),
        "rpe": territory["code_rpe"].nunique(),
        "population": int(pop.sum()),
        "raw_mb": sum(p.stat().st_size for p in project.raw.iterdir()) / 2**20,
    }


STEP = re.compile(r"(\w+)=([\d.]+)s")


def stage_breakdown(output: str) -> list[tuple[str, float]]:
    """Sum of the Dagster step durations by asset (the ingest partitions added up)."""
    totals: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith(("ok:", "FAILED:")) and "|" in line:
            for key, seconds in STEP.findall(line.split("|", 1)[1]):
                name = re.sub(r"^(raw|stg)_\w+$", r"\1_*", key)
                totals[name] = totals.get(name, 0.0) + float(seconds)
    return sorted(totals.items(), key=lambda kv: -kv[1])


def render(rows, facts: dict, excel_rows) -> list[str]:
    def n(x: int) -> str:
        return f"{x:,}".replace(",", " ")

    lines = [
        f"Synthetic France (`generate(..., scale='national')`, seed {SEED}): {n(facts['communes'])} communes "
        f"({facts['under_500']:.0%} under 500 inhabitants), {facts['departments']} departments, {n(facts['epcis'])} "
        f"EPCIs, {n(facts['rpe'])} RPE-like groups, {n(facts['population'])} inhabitants; {facts['raw_mb']:.0f} MB "
        "of files. Each measure a separate process (`bench/national.py`).",
        "",
        "| measure | wall time | peak memory | target (time) | verdict | target (memory) | verdict | what |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, what, (t_time, t_mem) in rows:
        failed = " (FAILED)" if m.returncode else ""
        lines.append(
            f"| {m.label}{failed} | {fmt_s(m.wall_s)} | {fmt_mb(m.peak_mb)} | "
            f"{f'< {t_time / 60:.0f} min' if t_time else '-'} | {verdict(m.wall_s, t_time)} | "
            f"{f'< {t_mem / 1024:.0f} GB' if t_mem else '-'} | {verdict(m.peak_mb, t_mem)} | {what} |")
    lines.append("")
    if facts.get("steps"):
        lines += ["Where the end-to-end time goes (Dagster step durations, ingest partitions added up; the rest is "
                  "Dagster's own run and event bookkeeping, about a second per run, and process start):", "",
                  "| step | time |", "|---|---|"]
        lines += [f"| {name} | {fmt_s(seconds)} |" for name, seconds in facts["steps"]]
        lines.append("")
    for m, _what, _t in rows[1:]:
        detail = [line for line in m.output.splitlines() if line.strip() and "HiGHS" not in line
                  and "THIRD_PARTY" not in line and not line.startswith("ok:")][-4:]
        if detail:
            lines += [f"`{m.label}` printed:", "", "```", *detail, "```", ""]
    if excel_rows:
        base = next((d for r, d, _m in excel_rows if r == "calamine" and d), None)
        lines += ["Reading the national workbooks once (every sheet, every cell):", "",
                  "| reader | reading time | peak memory | calamine speed-up |", "|---|---|---|---|"]
        for reader, data, m in excel_rows:
            if data and base:
                lines.append(f"| {reader} | {fmt_s(data['median_s'])} | {fmt_mb(m.peak_mb)} | "
                             f"{data['median_s'] / base['median_s']:.1f}x |")
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.national", description=__doc__.splitlines()[0])
    parser.add_argument("--communes", type=int, help="a smaller France (default: 34,900 communes)")
    parser.add_argument("--workdir", type=Path, help="keep the project folder here (default: a temporary folder)")
    parser.add_argument("--no-excel", action="store_true", help="skip the Excel reading comparison")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/results.md alone")
    args = parser.parse_args(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        rows, facts, excel_rows = run(args.workdir, args.communes, not args.no_excel)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_national_") as tmp:
            rows, facts, excel_rows = run(Path(tmp), args.communes, not args.no_excel)
    body = render(rows, facts, excel_rows)
    print("\n".join(body))
    if not args.no_write:
        title = "National scale: a synthetic France" + (f" ({args.communes} communes)" if args.communes else "")
        write_section("national", title, body + ANALYSIS)
    return 1 if any(m.returncode for m, _w, _t in rows) else 0


ANALYSIS: list[str] = []


if __name__ == "__main__":
    sys.exit(main())
