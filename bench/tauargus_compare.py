"""Benchmark: this project's disclosure control against tau-ARGUS OPT (pytauargus).

`python -m bench.tauargus_compare [--warehouse PATH] [--seed N] [--out FILE] [--no-linked]`

For every count indicator the policy marks sensitive (config/disclosure.yaml) and every
year, the hierarchical table commune -> RPE -> EPCI of `confidential.indicators` is
protected twice:

- by tau-ARGUS (pytauargus, tabular input): response = the count, frequency = the count
  itself, safety rule FREQ(threshold, 10)|MAN(10), the cells already secret at source
  given as primary suppressions in an a-priori file, zeros left empty (a true zero is
  publishable), optimal secondary suppression OPT (MOD if OPT fails; the output says
  which ran), cost = the cell value (tau-ARGUS's default);
- by this project's `mask()` on the same single indicator-year table, so the two see
  exactly the same cells (the pipeline's full run also links indicators: rates beside
  their terms, the policy's inequalities; reported separately).

Both patterns are judged by this project's audit (`audit_published`: single cells and
sums of masked cells of one relation). Three more tau-ARGUS runs test what its result
depends on: the a-priori bounds its OPT and audit assume for every cell (pytauargus
0.6.0: [smallest, largest cell of the table]; legacy tau-ARGUS: [0, 1.5 x largest]),
and protection levels set to the convention's single-cell criterion instead of the
frequency rule's. Results: `bench/results_tauargus.md`.

tau-ARGUS needs the value of every cell, including the ones the producer blanked: they
come from the sample generator's truth when the warehouse was built from the sample
(checked against every published cell), else they are imputed by spreading each zone's
hidden mass over its blanked communes (the output says which). The same completed
values give "value suppressed" for every pattern.

Not a test: nothing here is timed against a limit. `tests/test_bench_tauargus.py` checks
the adapter on a toy table.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from bench._tauargus import (  # noqa: F401 (tauargus_protect: the adapter's entry, tested from here)
    MAIN,
    TAU_SUPPRESSED,
    VARIANTS,
    TauArgusUnavailable,
    TauPattern,
    TauVariant,
    tauargus_protect,
)
from bench._tauargus_report import Row, Side, _audit_text, render
from pipeline.disclosure.audit import AuditResult, audit_published
from pipeline.disclosure.policy import Policy, load_policy
from pipeline.disclosure.suppression import mask
from pipeline.indicators import IndicatorSet, load_indicators
from pipeline.settings import PACKAGE_ROOT
from pipeline.territory import load_territory

RESULTS = Path(__file__).with_name("results_tauargus.md")


# ---------------------------------------------------------------------------------------
# The sample tables
# ---------------------------------------------------------------------------------------


def build_warehouse(root: Path, seed: int) -> Path:
    """Generate the sample and run the whole pipeline in an isolated project under `root`."""
    shutil.copytree(PACKAGE_ROOT / "config", root / "config")
    for folder in ("raw", "warehouse", "reports", "dagster_home"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CAF_PROJECT_DIR": str(root), "DAGSTER_HOME": str(root / "dagster_home")}
    for var in ("CAF_RAW_DIR", "CAF_WAREHOUSE", "CAF_REPORTS_DIR", "CAF_CONFIG_DIR"):
        env.pop(var, None)
    warehouse = root / "warehouse" / "warehouse.duckdb"
    for args in (["sample", "--out", str(root / "raw"), "--seed", str(seed)], ["run"]):
        done = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=PACKAGE_ROOT, env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            if args == ["run"] and _has_confidential(warehouse):
                print("warning: `python -m pipeline run` reported failures; confidential.indicators "
                      "was built, the benchmark goes on", file=sys.stderr)
                continue
            raise RuntimeError(f"python -m pipeline {' '.join(args)} failed:\n{done.stdout[-3000:]}\n"
                               f"{done.stderr[-3000:]}")
    return warehouse


def _has_confidential(warehouse: Path) -> bool:
    if not warehouse.exists():
        return False
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return bool(con.sql("SELECT count(*) FROM information_schema.tables WHERE table_schema = "
                            "'confidential' AND table_name = 'indicators'").fetchone()[0])
    finally:
        con.close()


def read_confidential(warehouse: Path) -> pd.DataFrame:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.sql("SELECT * FROM confidential.indicators").df()
    finally:
        con.close()


def benchmark_indicators(indicators: IndicatorSet, policy: Policy) -> list[str]:
    """The count indicators the policy marks sensitive: what tau-ARGUS's frequency rule models."""
    return [i.id for i in indicators.indicators if i.kind == "count" and policy.of(i.id).sensitive]


@dataclass
class Completion:
    values: dict[tuple[str, int], pd.Series]  # (indicator, year) -> value by zone_code
    how: str
    skipped: dict[tuple[str, int], str] = field(default_factory=dict)


def complete_values(confidential: pd.DataFrame, zones: pd.DataFrame, indicators: IndicatorSet,
                    ids: list[str], seed: int | None) -> Completion:
    """The value of every cell of each table, blanked ones included (see the module's doc).

    Published cells keep the warehouse's value. A blanked cell takes the sample
    generator's true value when the generator agrees with every published commune cell of
    the table and the completed table adds up; otherwise each zone's hidden mass is
    spread over its blanked communes."""
    truth = None
    if seed is not None:
        from pipeline.catalog import load_catalog
        from pipeline.sample import sample_truth

        t = sample_truth(seed)
        truth = {(r.source, r.measure, int(r.year), r.zone_code): r.value for r in t.itertuples()}
        derived = {(sid, m): parts for sid, src in load_catalog().sources.items() for m, parts in src.derived.items()}
    children: dict[str, list[str]] = {}
    for code, parent in zip(zones["zone_code"], zones["parent_code"]):
        if isinstance(parent, str):
            children.setdefault(parent, []).append(code)

    def additive(v: pd.Series) -> bool:
        return all(abs(v[p] - sum(v[k] for k in kids)) < 1e-6 for p, kids in children.items())

    def true_value(source: str, measure: str, year: int, zone: str) -> float:
        parts = derived.get((source, measure), [measure])
        return float(sum(truth.get((source, m, year, zone), np.nan) for m in parts))

    out: dict[tuple[str, int], pd.Series] = {}
    skipped: dict[tuple[str, int], str] = {}
    from_truth = imputed = 0
    for ind in ids:
        spec = indicators.get(ind)
        for year, table in confidential[confidential["indicator"] == ind].groupby("year"):
            key = (ind, int(year))
            table = table.set_index("zone_code")
            if table["status"].eq("not_available").any():
                skipped[key] = "cells not available at source: no complete table to give tau-ARGUS"
                continue
            known = table["value"].where(table["status"] == "ok").astype(float)
            if truth is not None:
                communes = table.index[table["level"] == "commune"]
                guess = pd.Series({z: true_value(spec.source, spec.measure, int(year), z) for z in communes})
                published = known[communes].notna()
                filled = known.copy()
                filled[communes[~published]] = guess[~published]
                if (np.allclose(guess[published], known[communes][published]) and filled.notna().all()
                        and additive(filled)):
                    out[key] = filled
                    from_truth += 1
                    continue
            filled = _impute(known, children)
            if filled is None:
                skipped[key] = "a zone above the commune is blanked: its hidden mass is unknown"
                continue
            out[key] = filled
            imputed += 1
    how = []
    if from_truth:
        how.append(f"{from_truth} table(s): from the sample generator's truth (seed {seed}), which agrees with "
                   "every published commune cell and makes each table add up")
    if imputed:
        how.append(f"{imputed} table(s): imputed (each zone's hidden mass spread evenly over its blanked "
                   "communes)")
    return Completion(out, "; ".join(how), skipped)


def _impute(known: pd.Series, children: dict[str, list[str]]) -> pd.Series | None:
    filled = known.copy()
    for parent, kids in children.items():
        blank = [k for k in kids if pd.isna(filled[k])]
        if not blank:
            continue
        if pd.isna(filled[parent]):
            return None
        hidden = int(round(filled[parent] - sum(filled[k] for k in kids if pd.notna(filled[k]))))
        share, rest = divmod(max(hidden, 0), len(blank))
        for i, k in enumerate(blank):
            filled[k] = share + (1 if i < rest else 0)
    return None if filled.isna().any() else filled.astype(float)


# ---------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------


def published_from_mask(table: pd.DataFrame, masked: pd.Series) -> pd.DataFrame:
    """A published frame (the audit's input) for `table` with the cells of `masked` hidden."""
    out = table[["level", "zone_code", "zone_name", "parent_code", "indicator", "year"]].copy()
    out["status"] = np.where(masked.to_numpy(), "masked", "published")
    out["value"] = table["value"].where(~masked.to_numpy())
    return out.reset_index(drop=True)


def audit_counts(audit: AuditResult) -> dict[str, int]:
    """Findings by kind; `below_sum` = a sum of masked cells of one relation proven 1-4."""
    counts = {"pinned": 0, "below_cell": 0, "below_sum": 0, "inconsistent": 0}
    for f in audit.findings:
        if f.problem == "pinned":
            counts["pinned"] += 1
        elif f.problem == "inconsistent":
            counts["inconsistent"] += 1
        elif len(f.cells) > 1:
            counts["below_sum"] += 1
        else:
            counts["below_cell"] += 1
    counts["total"] = len(audit.findings)
    return counts


def compare_table(table: pd.DataFrame, values: pd.Series, zones: pd.DataFrame, indicators: IndicatorSet,
                  policy: Policy, infra: frozenset[str], workdir: Path,
                  variants: tuple[TauVariant, ...] = VARIANTS) -> tuple[Row, TauPattern | None]:
    """Every pattern of one indicator-year table of confidential.indicators."""
    table = table.reset_index(drop=True)
    full = table["zone_code"].map(values)
    ind, year = str(table["indicator"].iloc[0]), int(table["year"].iloc[0])

    started = time.perf_counter()
    result = mask(table, zones, indicators, policy, infra)
    seconds = time.perf_counter() - started
    pub = result.published.set_index("zone_code").loc[table["zone_code"]]
    masked = pd.Series((pub["status"] == "masked").to_numpy(), index=table.index)
    # secondary = masked although published at source and not below the threshold
    free = table["status"].eq("ok") & ~table["value"].between(1, policy.threshold - 1)
    ours = Side(
        primary=result.counts["primary"] + result.counts["secret_at_source"],
        secondary=result.counts["secondary"],
        value=float(full[masked].sum()),
        secondary_value=float(full[masked & free].sum()),
        seconds=seconds,
        audit=audit_counts(audit_published(result.published, zones, indicators, policy)),
        masked=masked,
    )
    row = Row(ind, year, len(table), ours)

    cells = pd.DataFrame({"zone_code": table["zone_code"], "value": full,
                          "apriori": table["status"].eq("secret_at_source")})
    main_pattern = None
    for variant in variants:
        try:
            pattern = tauargus_protect(cells, zones, workdir / f"{ind}_{year}_{variant.key}",
                                       threshold=policy.threshold, convention_levels=variant.convention_levels,
                                       legacy_bounds=variant.legacy_bounds)
        except TauArgusUnavailable:
            return row, None
        status = table["zone_code"].map(pattern.cells.set_index("zone_code")["status"])
        # A cell blanked at source stays blanked whatever tau-ARGUS says (a zero blanked by
        # the producer is an empty cell to tau-ARGUS, which cannot take it as a primary).
        status = status.where(~(cells["apriori"] & ~status.isin(TAU_SUPPRESSED)), "U")
        tau_masked = status.isin(TAU_SUPPRESSED)
        audit = audit_published(published_from_mask(table, tau_masked), zones, indicators, policy)
        row.tau[variant.key] = Side(
            primary=int((status == "U").sum()),
            secondary=int((status == "M").sum()),
            value=float(full[tau_masked].sum()),
            secondary_value=float(full[status == "M"].sum()),
            seconds=pattern.seconds,
            audit=audit_counts(audit),
            masked=tau_masked,
            method=pattern.method,
            own_rule=pattern.own_rule_violations(policy.threshold),
        )
        if variant == MAIN:
            main_pattern = pattern
    return row, main_pattern


# ---------------------------------------------------------------------------------------
def _linked_run(confidential: pd.DataFrame, rows: list[Row], completion: Completion, zones: pd.DataFrame,
                indicators: IndicatorSet, policy: Policy, infra: frozenset[str]) -> dict:
    started = time.perf_counter()
    result = mask(confidential, zones, indicators, policy, infra)
    seconds = time.perf_counter() - started
    audit = audit_published(result.published, zones, indicators, policy)
    pub = result.published
    secondary, secondary_value = 0, 0.0
    by_indicator: dict[str, int] = {}
    for r in rows:
        values = completion.values[(r.indicator, r.year)]
        conf = confidential[(confidential["indicator"] == r.indicator) & (confidential["year"] == r.year)]
        status = pub[(pub["indicator"] == r.indicator) & (pub["year"] == r.year)].set_index("zone_code")["status"]
        free = conf["status"].eq("ok") & ~conf["value"].between(1, policy.threshold - 1)
        hit = conf["zone_code"].map(status).eq("masked") & free
        secondary += int(hit.sum())
        secondary_value += float(conf.loc[hit, "zone_code"].map(values).sum())
        by_indicator[r.indicator] = by_indicator.get(r.indicator, 0) + int(hit.sum())
    return {"cells": len(confidential), "seconds": seconds, "rounds": result.rounds, "findings": len(audit.findings),
            "tables": len(rows), "secondary": secondary, "secondary_value": secondary_value,
            "single_secondary": sum(r.ours.secondary for r in rows),
            "single_secondary_value": sum(r.ours.secondary_value for r in rows),
            "by_indicator": {k: v for k, v in sorted(by_indicator.items(), key=lambda kv: -kv[1]) if v}}


def run(warehouse: Path, seed: int | None, out: Path | None, linked: bool = True, label: str = "") -> str:
    started = time.perf_counter()
    indicators = load_indicators()
    policy = load_policy()
    territory = load_territory()
    zones = territory.zones()
    confidential = read_confidential(warehouse)
    ids = benchmark_indicators(indicators, policy)
    completion = complete_values(confidential, zones, indicators, ids, seed)

    rows: list[Row] = []
    engine = ""
    with tempfile.TemporaryDirectory(prefix="tauargus_bench_") as tmp:
        for (ind, year), values in sorted(completion.values.items(), key=lambda kv: (ids.index(kv[0][0]), kv[0][1])):
            table = confidential[(confidential["indicator"] == ind) & (confidential["year"] == year)]
            row, pattern = compare_table(table, values, zones, indicators, policy,
                                         territory.infra_communal_levels, Path(tmp))
            rows.append(row)
            if pattern is not None:
                engine = pattern.engine
            t = row.main
            print(f"{ind} {year}: tau A {(f'{t.primary:d}+{t.secondary:d} ' + _audit_text(t.audit)) if t else '-'}"
                  f" | ours {row.ours.primary}+{row.ours.secondary} {_audit_text(row.ours.audit)}",
                  file=sys.stderr, flush=True)

    linked_info = (_linked_run(confidential, rows, completion, zones, indicators, policy,
                               territory.infra_communal_levels) if linked else None)
    text = render(rows, engine=engine, threshold=policy.threshold, how_values=completion.how,
                  skipped=completion.skipped, linked=linked_info, total_seconds=time.perf_counter() - started,
                  warehouse=label or f"`{warehouse}`")
    if out is not None:
        out.write_text(text + "\n" + _kept(out), encoding="utf-8")
    return text


def _kept(out: Path) -> str:
    """The sections of `out` another measurement wrote (between `<!-- kept:name -->` and
    `<!-- /kept:name -->`: the cost of the releases), carried over to the new report."""
    if not out.exists():
        return ""
    found = re.finditer(r"<!-- kept:(\w+) -->.*?<!-- /kept:\1 -->", out.read_text(encoding="utf-8"), re.S)
    return "".join("\n" + m.group(0) + "\n" for m in found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tauargus_compare", description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, help="a built warehouse.duckdb (default: build one from the "
                                                       "sample in a temporary directory, about a minute)")
    parser.add_argument("--seed", type=int, default=2022, help="sample seed (to build, and for the blanked values)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Markdown output (default bench/results_tauargus.md)")
    parser.add_argument("--no-linked", action="store_true", help="skip the pipeline's full linked run")
    args = parser.parse_args(argv)
    if args.warehouse is not None:
        text = run(args.warehouse, args.seed, args.out, linked=not args.no_linked)
    else:
        with tempfile.TemporaryDirectory(prefix="tauargus_bench_wh_") as tmp:
            print(f"building the sample warehouse (seed {args.seed}) in {tmp} ...", file=sys.stderr, flush=True)
            warehouse = build_warehouse(Path(tmp), args.seed)
            text = run(warehouse, args.seed, args.out, linked=not args.no_linked,
                       label=f"the sample (seed {args.seed}), built by `python -m pipeline run` in a temporary "
                             "project")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
