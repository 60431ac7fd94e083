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
- masking + audit: the `core_masking` step of that run, `mask()` on every cell
  (sub-problems per year and EPCI, solved in one process per core) then its blocking
  audit check with sums (`--separate-masking` measures it again alone, without
  Dagster, in its own process: `python -m bench._runner mask`);
- Excel reading of the national workbooks, calamine against openpyxl (read-only).

Wall time around each process; peak memory of its largest process or of its process
tree (worker processes included), whichever is larger. Figures and targets go to
bench/results.md. Long: about 40 minutes on 2 cores (the masking, see results.md).
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
NATIONAL = 34_900  # communes of the full-size synthetic France
SEED = 2022


def run(workdir: Path, communes: int | None, excel: bool,
        separate_masking: bool = False) -> tuple[list[tuple[Measure, str, tuple]], dict, list]:
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

    masking = dict(step_rows).get("core_masking")
    if masking is not None:  # the step of the run above: mask() then its blocking audit check
        rows.append((Measure("masking + audit", masking, m.peak_rss_mb, m.tree_rss_mb, m.returncode),
                     "the `core_masking` step of the run above: `mask()` (sub-problems per year and EPCI, one worker "
                     "process per core, audit rounds) then the blocking audit check with sums; peak memory: the "
                     "whole run's", TARGETS["masking + audit"]))
    if separate_masking:
        print("national: masking + audit", file=sys.stderr, flush=True)
        m = measure("masking + audit (no Dagster)", python_step(["-m", "bench._runner", "mask"]), env)
        rows.append((m, "`mask()` then the blocking audit with sums, without Dagster, in its own process",
                     TARGETS["masking + audit"]))
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
    reduced = facts["communes"] < NATIONAL
    for m, what, (t_time, t_mem) in rows:
        failed = " (FAILED)" if m.returncode else ""
        if reduced:  # the targets are for the full size: no verdict on a smaller France
            t_time = t_mem = None
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
    parser.add_argument("--separate-masking", action="store_true",
                        help="also measure masking + audit alone, without Dagster, in its own process")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/results.md alone")
    args = parser.parse_args(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        rows, facts, excel_rows = run(args.workdir, args.communes, not args.no_excel, args.separate_masking)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_national_") as tmp:
            rows, facts, excel_rows = run(Path(tmp), args.communes, not args.no_excel, args.separate_masking)
    body = render(rows, facts, excel_rows)
    print("\n".join(body))
    if not args.no_write:
        title = "National scale: a synthetic France" + (f" ({args.communes} communes)" if args.communes else "")
        write_section("national", title, body + analysis(rows, facts))
    return 1 if any(m.returncode for m, _w, _t in rows) else 0


def analysis(rows, facts: dict) -> list[str]:
    """Where the time goes and what would meet the targets: the figures of this run, and
    what profiling (cProfile, 2026-11-29) showed."""
    steps = dict(facts.get("steps") or [])
    by_label = {m.label: m for m, _w, _t in rows}
    e2e = by_label.get("end to end")
    ingest = steps.get("raw_*", 0.0) + steps.get("stg_*", 0.0)
    warehouse = sum(v for k, v in steps.items() if k.startswith("core_indicator"))
    masking = steps.get("core_masking")
    lines = ["### Where the time goes, and what would meet the targets", ""]
    if e2e is not None:
        lines.append(
            f"- **End to end** ({fmt_s(e2e.wall_s)}, {fmt_mb(e2e.peak_mb)} at the peak): ingest {fmt_s(ingest)} of "
            f"step time over the 22 runs, warehouse {fmt_s(warehouse)}, masking + audit "
            f"{fmt_s(masking) if masking is not None else '?'}; the rest is Dagster's bookkeeping and process start. "
            "Ingest, validation and aggregation scale well (files of 42,000 rows, DuckDB): the masking does not.")
    lines += [
        "- **Masking + audit** is the cost: the secondary suppression is exact (a mixed-integer programme per "
        "sub-problem) and proven by an exact LP audit after every round; at national scale that is about 6,250 "
        "sub-problems (1,249 EPCIs x 5 years), nearly none trivially safe (almost every EPCI has a commune of a "
        "few hundred inhabitants with counts of 1 to 4), 8 audit rounds on average and up to 60: 1 to 3 ms of "
        "CPU per cell in all. Profile of one department (633 communes): 45 % in the LP solves of the "
        "audit rounds (HiGHS), 20 % in the MILP solves, the rest in building the models in Python. The blocking "
        "audit check then audits the whole table again in one process.",
        "- What would meet the 2-minute target on this 2-core machine: not parallelism alone (the sub-problems "
        "already run on both cores; the work is 20 to 30 times the target). In order of effect: (1) sharp cuts "
        "from the first round (`mask(..., sharp_cuts_from_round=1)`: about half the time and 6 % fewer secondary "
        "cells on a 400-commune France, but a different CABBALR pattern, so a decision for the owner of the "
        "published table); (2) an audit that keeps its LP models between rounds and re-solves only the cells "
        "whose neighbourhood changed (now it rebuilds every model of a changed indicator group; `audit.py`, "
        "kept independent of the solver on purpose); (3) the blocking check audited per department in worker "
        "processes (its components never cross an EPCI tree); (4) beyond one machine, the department partitions "
        "on Dagster's Kubernetes or Celery executor (docs/scale.md): the sub-problems are independent, so the "
        "time divides by the number of workers.",
        "- **Peak memory**: the confidential table of 2.2 million cells held by pandas (about 2 GB with its "
        "strings) in the masking step, and, in the warehouse steps, the content hash written to the Dagster "
        "metadata (`_content_hash` in `pipeline/defs/warehouse.py`: `string_agg` of every row cast to text, then "
        "md5): measured alone on the national `indicator_inputs`, 40 s and 5.7 GB; an md5 of the sorted md5s of "
        "the rows gives the same guarantee in 13.7 s and 0.7 GB.",
        "- **Reports** are not run at national scale: they are one agglomeration's documents (docs/scale.md).",
        "",
    ]
    if facts.get("communes", NATIONAL) < NATIONAL:
        lines += [
            f"**This run is a reduced France ({facts['communes']} communes), not the full size.** The full size "
            "(34,900 communes, `python -m bench.national` without `--communes`) was run on this machine on "
            "2026-11-29 (19:00 to 19:37 UTC): generation 42 s (283 MB); the 22 ingest runs about 55 s and the "
            "aggregation about 29 s (4 min 40 s together, with a 5.9 GB peak from the warehouse's content hash, "
            "in an earlier run while the machine was loaded 4 to 5 times over); the masking step was still "
            "solving after 34 minutes on both cores (2.4 GB in the main process, about 200 MB per worker) when it "
            "was stopped by hand, so no end-to-end figure exists for it. Sampled then, the HiGHS MIP solver spent "
            "long stretches in `transformNewIntegerFeasibleSolution` on the largest trees. The masking time grows "
            "with the cells (400 communes: 40 s; 5,000: 405 s, above): the full size needs about 50 minutes of "
            "masking and audit, an hour end to end on 2 cores. Every national target is missed, by the masking; "
            "next steps besides those above: a time limit per sub-problem keeping a feasible incumbent (the audit "
            "still proves it), and the trivially safe trees skipped before any solve (done; few at this scale).",
            "",
        ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
