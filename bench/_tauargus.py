"""The tau-ARGUS adapter of the comparison (bench/tauargus_compare.py): one single table
protected by tau-ARGUS through pytauargus, and the pattern read back. Not a benchmark
itself (the dispatcher skips modules starting with `_`)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SAFETY_RANGE = 10  # tau-ARGUS's safety range (%) for FREQ-unsafe and a-priori unsafe cells
TAU_SUPPRESSED = ("U", "M")  # primary unsafe, secondary


# ---------------------------------------------------------------------------------------
# tau-ARGUS adapter
# ---------------------------------------------------------------------------------------


class TauArgusUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class TauVariant:
    key: str
    convention_levels: bool  # a-priori protection levels (0, max(threshold - value, 1))
    legacy_bounds: bool  # a-priori cell bounds [0, 1.5 x largest cell] as legacy tau-ARGUS

    def describe(self, threshold: int) -> str:
        levels = (f"levels (0, max({threshold} - value, 1)) in the a-priori file" if self.convention_levels
                  else f"FREQ({threshold},{SAFETY_RANGE})|MAN({SAFETY_RANGE}) levels")
        bounds = "bounds [0, 1.5 x largest] (legacy)" if self.legacy_bounds else "bounds as shipped"
        return f"{levels}, {bounds}"


MAIN = TauVariant("A", False, False)
VARIANTS = (MAIN, TauVariant("B", False, True), TauVariant("C", True, False), TauVariant("D", True, True))


@dataclass
class TauPattern:
    """tau-ARGUS's decision for one hierarchical table, one row per zone."""

    cells: pd.DataFrame  # zone_code, value, status (S/U/M/E), lpl, upl, rlower, rupper
    method: str  # "OPT", or "MOD (OPT failed: ...)"
    seconds: float  # writing the inputs, running the engine, reading the pattern back
    rule: str
    engine: str

    def own_rule_violations(self, threshold: int) -> list[str]:
        """Where the pattern breaks tau-ARGUS's own requirements: a cell the frequency
        rule flags left published, or an unsafe cell whose realised interval (tau-ARGUS's
        own audit) does not reach its protection levels."""
        out = []
        c = self.cells
        small = (c["value"] >= 1) & (c["value"] < threshold)
        for zone in c.loc[small & (c["status"] != "U"), "zone_code"]:
            out.append(f"{zone}: below the frequency threshold but not primary")
        unsafe = c[c["status"] == "U"]
        short = (unsafe["rlower"] > unsafe["value"] - unsafe["lpl"] + 1e-6) | (
            unsafe["rupper"] < unsafe["value"] + unsafe["upl"] - 1e-6
        )
        for zone in unsafe.loc[short, "zone_code"]:
            out.append(f"{zone}: realised interval narrower than its protection levels")
        return out


def _hierarchy_lines(zones: pd.DataFrame, root: str, lead: str = "@") -> list[str]:
    children: dict[str, list[str]] = {}
    for code, parent in zip(zones["zone_code"], zones["parent_code"]):
        if isinstance(parent, str):
            children.setdefault(parent, []).append(code)
    lines: list[str] = []

    def walk(code: str, depth: int) -> None:
        for kid in children.get(code, []):
            lines.append(lead * depth + kid)
            walk(kid, depth + 1)

    walk(root, 0)
    return lines


def _engine(legacy_bounds: bool):
    """A pytauargus engine; with `legacy_bounds`, one whose OPT and audit assume every cell
    lies in [0, 1.5 x the largest cell] (legacy tau-ARGUS's TableSet min/maxTabVal) instead
    of pytauargus 0.6.0's [smallest cell, largest cell]. Overrides a private method of the
    pinned pytauargus release."""
    from pytauargus.engine import Engine

    if not legacy_bounds:
        return Engine()

    class LegacyBoundsEngine(Engine):
        def _table_cell_bounds(self, tab: int) -> tuple[float, float]:
            low, high = super()._table_cell_bounds(tab)
            return (1.5 * low if low < 0 else 0.0, 1.5 * high if high > 0 else 0.0)

    return LegacyBoundsEngine()


def tauargus_protect(
    cells: pd.DataFrame,
    zones: pd.DataFrame,
    workdir: Path,
    *,
    threshold: int = 5,
    safety_range: int = SAFETY_RANGE,
    method: str = "OPT",
    convention_levels: bool = False,
    legacy_bounds: bool = False,
) -> TauPattern:
    """Protect one hierarchical table with tau-ARGUS.

    `cells`: zone_code, value (every zone of `zones`, complete, non-negative whole
    numbers, additive along `zones`), apriori (bool: primary suppression given a priori,
    e.g. blanked at source). `zones`: level, zone_code, parent_code; the zone without a
    parent is the table's total.

    `convention_levels`: instead of the rule's own protection levels, give every unsafe
    cell (a priori or below the threshold) the levels of the convention's single-cell
    criterion, in the a-priori file: lower 0, upper max(threshold - value, 1) (its
    realised upper bound must reach the threshold, and it must not be pinned).
    `legacy_bounds`: see `_engine`.
    """
    try:
        import pytauargus
        from pytauargus.batch import BatchError
    except ImportError as exc:  # depends on the environment
        raise TauArgusUnavailable("pytauargus is not installed (pip install -e '.[bench]')") from exc

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    roots = [c for c, p in zip(zones["zone_code"], zones["parent_code"]) if not isinstance(p, str)]
    if len(roots) != 1:
        raise ValueError(f"the hierarchy needs exactly one total zone, found {roots}")
    root = roots[0]
    values = cells.set_index("zone_code")["value"]
    if set(values.index) != set(zones["zone_code"]) or values.isna().any():
        raise ValueError("tau-ARGUS needs a value for every zone of the hierarchy")
    if (values < 0).any() or not np.allclose(values, values.round()):
        raise ValueError("counts must be non-negative whole numbers")
    rule = f"FREQ({threshold},{safety_range})|MAN({safety_range})"
    described = rule

    started = time.perf_counter()
    (workdir / "zones.hrc").write_text("\n".join(_hierarchy_lines(zones, root)) + "\n", encoding="utf-8")
    (workdir / "table.rda").write_text(
        "\n".join([
            '<SEPARATOR> ";"',
            '<SAFE> "S"', '<UNSAFE> "U"', '<PROTECT> "P"',
            "zone", "  <RECODEABLE>", f'  <TOTCODE> "{root}"', "  <HIERARCHICAL>",
            f'  <HIERCODELIST> "{workdir / "zones.hrc"}"', '  <HIERLEADSTRING> "@"',
            "value", "  <NUMERIC>", "  <DECIMALS> 0",
            "freq", "  <FREQUENCY>",
        ]) + "\n",
        encoding="utf-8",
    )
    # Frequency = the count itself (persons counted once); a zero is an empty cell.
    (workdir / "table.tab").write_text(
        "".join(f"{code};{v:.0f};{v:.0f}\n" for code, v in values.items()), encoding="utf-8"
    )
    # tau-ARGUS cannot take a zero as a primary (an empty cell): the caller masks those.
    apriori = [c for c, a in zip(cells["zone_code"], cells["apriori"]) if a and values[c] > 0]
    lines_apriori = [f"{c};U" for c in apriori]
    if convention_levels:
        unsafe = apriori + [c for c, v in values.items() if 1 <= v < threshold and c not in apriori]
        # every unsafe cell as a status line first (the a-priori reader sizes its fields on
        # the first line), then the protection levels
        lines_apriori = [f"{c};U" for c in unsafe] + [f"{c};PL;0;{max(threshold - values[c], 1):.0f}"
                                                       for c in unsafe]
        described = f"{rule} + a-priori levels (0, max({threshold} - value, 1))"
    (workdir / "apriori.hst").write_text("".join(line + "\n" for line in lines_apriori), encoding="utf-8")

    def batch(how: str) -> str:
        lines = [
            f'<OPENTABLEDATA> "{workdir / "table.tab"}"',
            f'<OPENMETADATA> "{workdir / "table.rda"}"',
            '<SPECIFYTABLE> "zone"|"value"||',
            f"<SAFETYRULE> {rule}",
            "<READTABLE> 0",
        ]
        if lines_apriori:
            lines.append(f'<APRIORI> "{workdir / "apriori.hst"}",1,";",0,0')
        lines += [f"<SUPPRESS> {how}(1)", f'<WRITETABLE> (1,5,SO+,"{workdir / "pattern.tab"}")']
        path = workdir / f"batch_{how.lower()}.arb"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return str(path)

    # The engine's solvers write their logs (FullJJ.log, CSPlogfile.txt, cspSCIP.*) in the
    # current directory: run it from the work directory.
    here = os.getcwd()
    os.chdir(workdir)
    try:
        used = method
        try:
            engine = _engine(legacy_bounds).run_batch(batch(method))
        except BatchError as exc:
            if method != "OPT" or not any(word in str(exc) for word in ("FullJJ", "OPT", "not supported")):
                raise
            used = f"MOD (OPT failed: {exc})"
            engine = _engine(legacy_bounds).run_batch(batch("MOD"))
        seconds = time.perf_counter() - started

        # tau-ARGUS's own audit (realised intervals of the suppressed cells), written beside it.
        engine.audit(0)
        audit_path = workdir / "audit.tab"
        engine.write_intermediate_table(0, str(audit_path), simple=True, with_audit=True)
    finally:
        os.chdir(here)
    rows = []
    for line in audit_path.read_text(encoding="utf-8").splitlines():
        f = line.split(";")
        # code; value; freq; cost; status; lpl; upl; rlower; rupper; width; 3 percentages
        code = f[0].strip().strip('"')
        rows.append((root if code in ("", "Total") else code, float(f[1]), f[4], float(f[5]), float(f[6]),
                     float(f[7]), float(f[8])))
    out = pd.DataFrame(rows, columns=["zone_code", "value", "status", "lpl", "upl", "rlower", "rupper"])
    if set(out["zone_code"]) != set(values.index):
        raise RuntimeError("tau-ARGUS's table does not hold the zones it was given")
    meta = pytauargus.engine_meta() if callable(pytauargus.engine_meta) else pytauargus.engine_meta
    engine_text = (f"pytauargus {pytauargus.__version__} (tau-ARGUS engine {engine.version}, "
                   f"HiGHS {meta.get('highs_version', '?')})")
    return TauPattern(out, used, seconds, described, engine_text)
