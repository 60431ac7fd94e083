"""Safe operations on the warehouse: two runs at once, and a run killed mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import duckdb

from pipeline.settings import PACKAGE_ROOT
from tests.helpers import materialize, query

RUNNER = textwrap.dedent(
    """
    import sys
    from tests.helpers import materialize
    source, years = sys.argv[1], sys.argv[2:]
    for year in years:
        result = materialize([f"raw_{source}", f"stg_{source}"], year)
        print(source, year, "ok" if result.success else "FAILED", flush=True)
        if not result.success:
            sys.exit(1)
    """
)


def _start(source: str, *years: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, source, *years],
        cwd=PACKAGE_ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_two_runs_started_together_both_finish(sample_project):
    first, second = _start("bca", "2017", "2018"), _start("bcecpaj", "2017", "2018")
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    assert "lock" not in " ".join(outputs).lower()
    ledger = query(sample_project, "SELECT source, year FROM lineage.ingest_ledger ORDER BY ALL")
    assert ledger == [("bca", 2017), ("bca", 2018), ("bcecpaj", 2017), ("bcecpaj", 2018)]
    assert query(sample_project, "SELECT count(DISTINCT year) FROM staging.bcecpaj")[0][0] == 2


def test_run_killed_mid_write_leaves_the_previous_tables_and_a_rerun_completes(sample_project):
    assert materialize(["raw_bca", "stg_bca"], "2017").success
    before = query(sample_project, "SELECT count(*), sum(value) FROM staging.bca")
    raw_before = query(sample_project, "SELECT count(*) FROM raw.bca_2017")
    killed = 0
    for delay in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0):
        process = _start("bca", *["2017"] * 20)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed += process.returncode == -signal.SIGKILL
        # whatever the moment, the file opens and every table is a whole version
        assert query(sample_project, "SELECT count(*), sum(value) FROM staging.bca") == before
        assert query(sample_project, "SELECT count(*) FROM raw.bca_2017") == raw_before
    assert killed >= 4
    assert materialize(["raw_bca", "stg_bca"], "2017").success
    assert query(sample_project, "SELECT count(*), sum(value) FROM staging.bca") == before


WRITER = textwrap.dedent(
    """
    import sys
    import duckdb, pandas as pd
    from pipeline.resources import replace_table
    con = duckdb.connect(sys.argv[1])
    version = 0
    while True:
        version += 1
        frame = pd.DataFrame({"version": [version] * 200_000, "n": range(200_000)})
        replace_table(con, "staging.big", frame)
        print(version, flush=True)
    """
)


def test_a_transaction_is_all_or_nothing_under_sigkill(tmp_path):
    db = tmp_path / "w.duckdb"
    for delay in (0.05, 0.2, 0.45):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], cwd=PACKAGE_ROOT,
                                   stdout=subprocess.PIPE, text=True)
        process.stdout.readline()  # a first version is committed: now kill it while it writes the next
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        con = duckdb.connect(str(db), read_only=True)
        try:
            versions = con.sql("SELECT count(*), count(DISTINCT version) FROM staging.big").fetchall()
        finally:
            con.close()
        assert versions == [(200_000, 1)]  # one whole version, never a mix or a half
