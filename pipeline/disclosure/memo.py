"""What the masking and the audit already decided, recognised by fingerprint (issue 17).

What belongs here: the fingerprint of one independent part of the work (a year and a zone
tree: `suppression.decompose`), and the records kept of it between runs, so that a new year
re-solves and re-audits only what changed:

- the masking of a sub-problem is a function of its cells (values, statuses, states, in
  their order), its zones, the policy, the indicators and the code that solves it; the same
  fingerprint gives the same outcome, so it is taken from the record instead of solved again;
- the audit of a (year, tree) part of the published table is a function of its published
  rows, its zones, the policy, the indicators, the audit's options and the audit's code; a
  part whose fingerprint was audited clean needs no second audit.

The code is part of every fingerprint (the source of every module of
`pipeline.disclosure` and the solvers' versions): a change of the masking, the audit, the
reader or the policy's parsing, or a new HiGHS, makes every record stale. What does not
belong here: deciding anything (`suppression`, `audit`), reading or writing the warehouse
(`pipeline.defs.disclosure`). Records hold positions, statuses, counts and hashes; the
masking's records also hold the audit's ranges of masked cells, which is why they are kept
in the confidential schema, destroyed with it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.disclosure.policy import Policy
from pipeline.indicators import IndicatorSet

SOLVERS = ("highspy", "scipy", "numpy")  # whose versions may change a solve's answer


@cache
def code_version() -> str:
    """sha256 of the disclosure package's source and the solvers' versions."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for name in SOLVERS:
        digest.update(f"{name}={metadata.version(name)}\0".encode())
    return digest.hexdigest()


def settings_fingerprint(policy: Policy, indicators: IndicatorSet, *options: object) -> str:
    """What every part's result depends on besides its own rows: the policy's text, the
    indicators' definitions (not where they were read from), the options, the code."""
    definitions = repr(dataclasses.replace(indicators, path=None))
    text = "\0".join([policy.sha256, definitions, repr(options), code_version()])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def part_fingerprints(cells: pd.DataFrame, zones: pd.DataFrame, parts: Iterable[tuple[np.ndarray, np.ndarray]],
                      policy: Policy, indicators: IndicatorSet, *options: object,
                      extras: list[str] | None = None) -> list[str]:
    """The fingerprint of each part, given as (positions of its rows in `cells`, positions of
    its zones in `zones`): sha256 of its rows' hashes in their order, its zones' in theirs,
    the columns' names and types, and `settings_fingerprint`. Each row is hashed once for
    all parts (pandas' `hash_pandas_object`, the same in every process and run). `extras`:
    per part, what else it depends on (what earlier releases published of it)."""
    settings = settings_fingerprint(policy, indicators, *options, _columns(cells), _columns(zones))
    hashes, zone_hashes = _row_hashes(cells), _row_hashes(zones)
    out = []
    for k, (rows, zone_rows) in enumerate(parts):
        digest = hashlib.sha256(settings.encode("utf-8"))
        if extras is not None:
            digest.update(b"releases\0" + extras[k].encode("utf-8"))
        digest.update(len(rows).to_bytes(8, "little") + np.ascontiguousarray(hashes[rows]).tobytes())
        digest.update(np.ascontiguousarray(zone_hashes[zone_rows]).tobytes())
        out.append(digest.hexdigest())
    return out


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False).to_numpy()


def _columns(frame: pd.DataFrame) -> str:
    return repr([(str(c), str(t)) for c, t in frame.dtypes.items()])


# --------------------------------------------------------------------------- records as text


def _plain(value):
    """JSON for numpy scalars and NaN (as null)."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    return value


def dumps(record: dict) -> str:
    return json.dumps(record, default=_plain, sort_keys=True, separators=(",", ":"))


def loads(text: str) -> dict:
    return json.loads(text)


def intervals_to_rows(intervals: pd.DataFrame) -> list[list]:
    return [[_plain(v) for v in row] for row in intervals.itertuples(index=False)]


def intervals_from_rows(rows: list[list], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("low", "high"):
        frame[column] = frame[column].astype(float)
    if "year" in frame:
        frame["year"] = frame["year"].astype(int)
    return frame
